"""Record activations at named points of a network, reduced on the fly.

    acts = capture(net, held_out_loader, reduce=("avgpool", 4))
    acts["s1.b2"]     # Tensor (n, d) float32 on the CPU
    acts.labels       # Tensor (n,) when the data yields labels, else None
    acts.points       # the names, in capture order

Points name taps: the taps of a LocalNet (any object with `taps` and `tap(name)`), or
`named_modules()` names of any other nn.Module.

Reductions run inside the hook, batch by batch, so only n x d_reduced numbers
per point are ever kept (10k samples of a 16x32x32 layer pooled to 4x4 hold
10k x 256 floats, not 10k x 16384). A spec is a step or a list of steps applied
in order, then flattened:
    None                        flatten
    ("avgpool", s)              adaptive average pooling of the spatial dims to s x s
    ("project", d[, seed])      fixed Gaussian random projection to d dims
    ("pca", d)                  top-d principal components, fitted beforehand
    ("tokens", mode[, n])       token axis of (B, T, C): "mean", "cls", "flatten", or "pool" to n tokens
    [("avgpool", 4), ("project", 128)]   composed
`reduce` is one spec for every point or a dict point -> spec.

PCA must be fitted on a separate set (the training split), never on the held-out set:
    red = fit_reducers(net, train_loader, reduce=[("avgpool", 4), ("pca", 64)])
    acts = capture(net, held_out_loader, reduce=red)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mi_analysis._util.checks import positive_int
from mi_analysis._util.threads import AUTO, intra_op_threads, resolve_threads

from .reductions import Reduction, _reductions_for
from .taps import _first_tensor, resolve_taps

__all__ = ["capture", "fit_reducers", "gather", "Captured"]


# ---------------------------------------------------------------- data


def _as_tensor(value: Any, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        if np.issubdtype(value.dtype, np.floating):
            value = value.astype(np.float32, copy=False)  # numpy float64 would not match float32 weights
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{what} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _split_batch(item: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(item, (Tensor, np.ndarray)):
        return _as_tensor(item, "a batch"), None
    if isinstance(item, (tuple, list)) and item:
        x = _as_tensor(item[0], "the x of a batch")
        y = _as_tensor(item[1], "the y of a batch") if len(item) > 1 else None
        return x, y
    raise TypeError(f"each batch of data must be a tensor x or a sequence (x, y, ...), got {type(item).__name__}")


def _batches(data: Any, batch_size: int, what: str = "data") -> Iterator[tuple[Tensor, Tensor | None]]:
    """(x, y or None) batches from a tensor, an (x, y) tuple, or an iterable of batches."""
    if isinstance(data, (Tensor, np.ndarray)):
        x, y = _as_tensor(data, what), None
    elif isinstance(data, tuple) and len(data) == 2 and all(isinstance(v, (Tensor, np.ndarray)) for v in data):
        x, y = _as_tensor(data[0], f"{what} x"), _as_tensor(data[1], f"{what} y")
        if len(x) != len(y):
            raise ValueError(f"{what} (x, y) has {len(x)} inputs but {len(y)} labels")
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        yield from (_split_batch(item) for item in data)
        return
    else:
        raise TypeError(
            f"{what} must be a tensor of inputs, an (x, y) tuple of tensors, or an iterable of x or (x, y) "
            f"batches (e.g. a DataLoader; wrap a Dataset in one), got {type(data).__name__}"
        )
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], None if y is None else y[start : start + batch_size]


def gather(data: Any, what: str = "data") -> tuple[Tensor, Tensor | None]:
    """Every sample of `data` (any form capture() takes) on the CPU: x (n, ...) and y (n, ...) or None."""
    xs, ys = [], []
    for x, y in _batches(data, batch_size=2**62, what=what):
        xs.append(x.detach().cpu())
        ys.append(None if y is None else y.detach().cpu())
    if not xs:
        raise ValueError(f"{what} yielded no samples")
    if any(y is None for y in ys) and not all(y is None for y in ys):
        raise ValueError(f"{what} yields labels with some batches and not with others")
    return torch.cat(xs), None if ys[0] is None else torch.cat(ys)


# ---------------------------------------------------------------- capture


class Captured(dict):
    """dict point name -> Tensor (n, d) float32 on the CPU, in capture order, with:

    points: tuple of the names, in order.
    labels: the labels the data yielded, concatenated (n, ...) on the CPU, or None.
    shapes: point -> per-sample shape of the raw activation before reduction, e.g. (16, 32, 32).
    """

    def __init__(self, tensors: dict[str, Tensor], labels: Tensor | None, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__(tensors)
        self.points = tuple(tensors)
        self.labels = labels
        self.shapes = shapes

    @property
    def n(self) -> int:
        return len(next(iter(self.values())))

    def __repr__(self) -> str:
        dims = ", ".join(f"{name!r}: {tuple(t.shape)}" for name, t in self.items())
        return f"Captured({{{dims}}}, labels={'None' if self.labels is None else tuple(self.labels.shape)})"


def _model_device(model: nn.Module) -> torch.device | None:
    """The one device holding the model's tensors (CPU for a model without any), None if they are spread out."""
    devices = {t.device for t in [*model.parameters(), *model.buffers()]}
    if not devices:
        return torch.device("cpu")
    return devices.pop() if len(devices) == 1 else None


def capture(
    model: nn.Module,
    data: Any,
    points: str | Iterable[str] | None = None,
    reduce: Any = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    max_samples: int | None = None,
    threads: int | str = AUTO,
) -> Captured:
    """Run `model` over `data` and record the activations at `points`, reduced batch by batch.

    model: a LocalNet (points default to all its taps) or any nn.Module (points are
        `named_modules()` names and must be given; a tuple/list output gives its first tensor).
    data: a tensor of inputs (n, ...), an (x, y) tuple of tensors, or an iterable of x or
        (x, y) batches (DataLoader, TensorLoader). Use a list, not a tuple, for a sequence of batches.
    reduce: one spec for all points or a dict point -> spec (see the module docstring); PCA steps
        must have been fitted (fit_reducers).
    batch_size: for a tensor or (x, y) input; iterables keep their own batches.
    device: where the forward runs; default the model's own device. A model elsewhere is moved
        there for the call and moved back afterwards.
    max_samples: stop after this many samples (the last batch is cut; no further batch is read).
    threads: CPU intra-op threads of the forward passes: "auto" (default: the cores other processes
        leave free when the capture starts, at least 1, at most torch.get_num_threads()) or an
        int >= 1 (mi_analysis._util.threads, the estimators' policy).

    The model runs in eval mode under torch.no_grad(); every module's training flag, the model's
    device, its hooks and the caller's thread count are restored afterwards, also when the forward raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = positive_int(batch_size, "batch_size")
    if max_samples is not None:
        max_samples = positive_int(max_samples, "max_samples")
    threads = resolve_threads(threads)  # "auto" read once, before any hook is set
    targets = resolve_taps(model, points)
    names = [point.name for point in targets]
    reductions = _reductions_for(reduce, names)
    unfitted = [name for name, reduction in reductions.items() if not reduction.fitted]
    if unfitted:
        raise ValueError(
            f"reduce has unfitted PCA steps for points {unfitted}; fit them on training activations with "
            "fit_reducers(model, train_data, points, reduce) and pass its result as reduce"
        )
    home = _model_device(model)
    if home is None:
        raise ValueError("model's parameters and buffers live on several devices; capture needs a one-device model")
    run_device = home if device is None else torch.device(device)

    chunks: dict[str, list[Tensor]] = {name: [] for name in names}
    shapes: dict[str, tuple[int, ...]] = {}
    fired: set[str] = set()

    def record(name: str, activation: Tensor) -> None:
        if name in fired:
            raise RuntimeError(
                f"point {name!r} was reached more than once in one forward pass (its module is called "
                "repeatedly); capture a point that runs once per forward"
            )
        fired.add(name)
        shapes.setdefault(name, tuple(activation.shape[1:]))
        # copy=True: a later in-place op (ReLU(inplace=True)) must not change what was recorded
        chunks[name].append(reductions[name].transform(activation.detach()).to("cpu", torch.float32, copy=True))

    def output_hook(name: str):
        return lambda module, inputs, output: record(name, _first_tensor(output, name))

    def input_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if not args:
                raise TypeError(f"point {name!r} captures the first positional input, but the module got none")
            record(name, _first_tensor(args[0], name))

        return hook

    training_flags = [(module, module.training) for module in model.modules()]
    handles = []
    labels: list[Tensor] = []
    has_labels: bool | None = None
    n = 0
    try:
        for point in targets:
            if point.where == "input":
                handles.append(point.target.register_forward_pre_hook(input_hook(point.name)))
            else:
                handles.append(point.target.register_forward_hook(output_hook(point.name)))
        model.eval()
        if run_device != home:
            model.to(run_device)
        with torch.no_grad(), intra_op_threads(threads):
            for x, y in _batches(data, batch_size):
                if max_samples is not None:
                    x = x[: max_samples - n]
                    y = None if y is None else y[: max_samples - n]
                if has_labels is None:
                    has_labels = y is not None
                elif has_labels != (y is not None):
                    raise ValueError("data yields labels in some batches but not in others")
                if y is not None and len(y) != len(x):
                    raise ValueError(f"a batch of data has {len(x)} inputs but {len(y)} labels")
                if len(x) == 0:
                    continue
                fired.clear()
                model(x.to(run_device))
                missing = [name for name in names if name not in fired]
                if missing:
                    raise RuntimeError(f"points {missing} were not reached by the forward pass")
                if y is not None:
                    labels.append(y.detach().cpu())
                n += len(x)
                if max_samples is not None and n >= max_samples:
                    break
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in training_flags:
            module.training = flag
        if run_device != home:
            model.to(home)
    if n == 0:
        raise ValueError("data yielded no samples")
    tensors = {name: torch.cat(chunks.pop(name)) for name in names}  # pop: free each list as it is joined
    return Captured(tensors, torch.cat(labels) if labels else None, shapes)


def fit_reducers(
    model: nn.Module,
    data: Any,
    points: str | Iterable[str] | None = None,
    reduce: Any = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    max_samples: int | None = 4096,
    threads: int | str = AUTO,
) -> dict[str, Reduction]:
    """Fit the PCA steps of `reduce` on the activations `model` produces on `data` (the fitting set).

    Returns point -> Reduction for every point (fitted copies; the `reduce` given is not changed),
    ready for capture(model, held_out_data, points, reduce=<this>). The steps before a point's first PCA
    run batch by batch; PCA is then fitted exactly on the first `max_samples` samples of `data`
    (a shuffled loader makes them a random subsample; None uses all of them).
    Arguments are those of capture().
    """
    threads = resolve_threads(threads)  # refused here even when there is nothing to fit
    names = [point.name for point in resolve_taps(model, points)]
    reductions = _reductions_for(reduce, names)
    starts = {name: r.fit_start for name, r in reductions.items() if r.fit_start is not None}
    if starts:
        heads = {name: Reduction(reductions[name].steps[:start]) for name, start in starts.items()}
        inputs = capture(
            model, data, list(heads), heads, batch_size=batch_size, device=device, max_samples=max_samples,
            threads=threads,
        )
        for name, start in starts.items():
            reductions[name].fit(inputs[name], start=start)
    return reductions
