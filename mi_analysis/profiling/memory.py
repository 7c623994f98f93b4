"""Device-independent activation-memory accounting.

Two meters, both context managers with `current_bytes`, `peak_bytes` and a resettable window
(`start_window()`, `window_peak_bytes`) so that a caller can cut one step into phases:

- `SavedTensorMeter` counts the bytes of tensors that autograd saves for backward and that are
  alive at the same time, through `torch.autograd.graph.saved_tensors_hooks`. Tensors sharing one
  storage are counted once; parameters (and anything else passed as `exclude`) are not counted, so
  the peak is the activation memory of a training step, comparable between CPU and CUDA and with
  the papers' numbers. A saved tensor stops counting when autograd releases it (after the backward
  that used it). Blind spot: inside a `torch.utils.checkpoint` region the checkpoint's own hooks
  take over, so only the region's inputs are seen; what it recomputes during backward is not.
- `LiveTensorMeter` counts every tensor storage that an operation creates while the meter is on
  and that is still alive: saved activations, recomputed activations, gradients, temporaries of
  the backward pass. What existed before (parameters, optimizer state, the batch) is not counted.
  Its peak is what an allocator must hold for the step, the CPU analogue of
  `torch.cuda.max_memory_allocated` minus the memory allocated before the step.
"""

from __future__ import annotations

import threading
import weakref
from typing import Iterable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _ByteCounter:
    """Live bytes per storage key, their peak, and the peak of the current window."""

    def __init__(self) -> None:
        self._live: dict[object, list[int]] = {}  # storage key -> [nbytes, references]
        # autograd may release tensors from its device threads; re-entrant because a release can run
        # inside _add when an allocation there triggers garbage collection
        self._lock = threading.RLock()
        self.current_bytes = 0
        self.peak_bytes = 0
        self.window_peak_bytes = 0

    def start_window(self) -> int:
        """Begin a new window (its peak starts at the bytes alive now); return those bytes."""
        with self._lock:
            self.window_peak_bytes = self.current_bytes
            return self.current_bytes

    def _add(self, key: object, nbytes: int) -> None:
        with self._lock:
            entry = self._live.get(key)
            if entry is None:
                entry = self._live[key] = [nbytes, 0]
                self.current_bytes += nbytes
                self.peak_bytes = max(self.peak_bytes, self.current_bytes)
                self.window_peak_bytes = max(self.window_peak_bytes, self.current_bytes)
            entry[1] += 1

    def _release(self, key: object) -> None:
        with self._lock:
            entry = self._live[key]
            entry[1] -= 1
            if entry[1] == 0:
                self.current_bytes -= entry[0]
                del self._live[key]


def _storage_key(storage: torch.UntypedStorage) -> tuple[str, int]:
    return (storage.device.type, storage.data_ptr())


class _SavedRef:
    """What autograd holds instead of a saved tensor; releases its bytes when autograd drops it."""

    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor: torch.Tensor, key: object, meter: "SavedTensorMeter") -> None:
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self) -> None:
        self.meter._release(self.key)


class SavedTensorMeter(_ByteCounter):
    """Context manager measuring peak bytes saved for backward (parameters excluded).

    >>> with SavedTensorMeter(exclude=model.parameters()) as meter:
    ...     loss = model(x).sum(); loss.backward()
    >>> meter.peak_bytes
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self._excluded = {_storage_key(t.untyped_storage()) for t in exclude}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    def _pack(self, tensor: torch.Tensor) -> object:
        storage = tensor.untyped_storage()
        key = _storage_key(storage)
        if key[1] == 0 or key in self._excluded:
            return tensor
        self._add(key, storage.nbytes())
        # detached: a saved output would otherwise hold its own grad_fn, a reference cycle that
        # keeps a graph dropped without backward alive until garbage collection
        return _SavedRef(tensor.detach(), key, self)

    @staticmethod
    def _unpack(packed: object) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _SavedRef) else packed


class LiveTensorMeter(_ByteCounter, TorchDispatchMode):
    """Context manager measuring the peak bytes of tensors created inside it and still alive.

    A storage counts from the operation that creates it until it is freed (a finalizer on the
    storage). Outputs that share storage with an input (views, in-place and out= operations)
    are not new memory and are skipped. Slower than SavedTensorMeter (Python runs per operation);
    meant for one measured step, not for training.
    """

    def __init__(self) -> None:
        _ByteCounter.__init__(self)
        TorchDispatchMode.__init__(self)
        self._finalizers: list[weakref.finalize] = []

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        # storages that outlive the meter (gradients, outputs) keep their bytes counted; drop the
        # finalizers so they do not call into a finished meter
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_storage_key(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = _storage_key(storage)
            if key[1] == 0 or key in inputs or key in self._live:
                continue
            self._add(key, storage.nbytes())
            self._finalizers.append(weakref.finalize(storage, self._release, key))
        return out


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Total bytes of distinct storages among `tensors` (parameters, optimizer state, ...)."""
    storages = {_storage_key(t.untyped_storage()): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return tensor_bytes(v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v))
