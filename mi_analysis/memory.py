"""Device-independent activation-memory accounting.

`SavedTensorMeter` counts the bytes of tensors that autograd saves for backward and that are
alive at the same time, through `torch.autograd.graph.saved_tensors_hooks`. Tensors sharing one
storage are counted once; parameters (and anything else passed as `exclude`) are not counted, so
the peak is the activation memory of a training step, comparable between CPU and CUDA. A saved
tensor stops counting when autograd releases it (after the backward that used it).
"""

from __future__ import annotations

from typing import Iterable

import torch


class _SavedRef:
    """What autograd holds instead of a saved tensor; releases its bytes when autograd drops it."""

    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor: torch.Tensor, key: int, meter: "SavedTensorMeter") -> None:
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self) -> None:
        self.meter._release(self.key)


class SavedTensorMeter:
    """Context manager measuring peak bytes saved for backward (parameters excluded).

    >>> with SavedTensorMeter(exclude=model.parameters()) as meter:
    ...     loss = model(x).sum(); loss.backward()
    >>> meter.peak_bytes
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self._live: dict[int, list[int]] = {}  # storage pointer -> [nbytes, references]
        self.current_bytes = 0
        self.peak_bytes = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor) -> object:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._excluded:
            return tensor
        entry = self._live.get(key)
        if entry is None:
            entry = self._live[key] = [storage.nbytes(), 0]
            self.current_bytes += entry[0]
            self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        entry[1] += 1
        return _SavedRef(tensor, key, self)

    @staticmethod
    def _unpack(packed: object) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _SavedRef) else packed

    def _release(self, key: int) -> None:
        entry = self._live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current_bytes -= entry[0]
            del self._live[key]


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of distinct storages among `tensors` (parameters, optimizer state, ...)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return tensor_bytes(v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v))
