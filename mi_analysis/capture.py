"""Record activations at named points of a network, reduced on the fly.

    acts = capture(net, probe_loader, reduce=("avgpool", 4))
    acts["s1.b2"]     # Tensor (n, d) float32 on the CPU
    acts.labels       # Tensor (n,) when the data yields labels, else None
    acts.points       # the names, in capture order

Points are the probe points of a LocalNet (any object with `probe_points` and
`probe_point(name)`), or `named_modules()` names of any other nn.Module.

Reductions run inside the hook, batch by batch, so only n x d_reduced numbers
per point are ever kept (10k samples of a 16x32x32 layer pooled to 4x4 hold
10k x 256 floats, not 10k x 16384). A spec is a step or a list of steps applied
in order, then flattened:
    None                        flatten
    ("avgpool", s)              adaptive average pooling of the spatial dims to s x s
    ("project", d[, seed])      fixed Gaussian random projection to d dims
    ("pca", d)                  top-d principal components, fitted beforehand
    [("avgpool", 4), ("project", 128)]   composed
`reduce` is one spec for every point or a dict point -> spec.

PCA must be fitted on a separate set (the training split), never on the probe set:
    red = fit_reducers(net, train_loader, reduce=[("avgpool", 4), ("pca", 64)])
    acts = capture(net, probe_loader, reduce=red)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "capture",
    "fit_reducers",
    "Captured",
    "Reduction",
    "AvgPool",
    "RandomProjection",
    "PCA",
    "make_reduction",
    "REDUCTION_STEPS",
    "UnknownPointError",
]


class UnknownPointError(KeyError, ValueError):
    """A point name the model does not have; catch it as KeyError or ValueError."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


# ---------------------------------------------------------------- reductions


class AvgPool:
    """Adaptive average pooling of the spatial dims: (B, C, H, W) -> (B, C, s, s), (B, C, L) -> (B, C, s).

    A spatial size already at most s is kept as it is (pooling never upsamples), and
    (B, d) activations without spatial dims pass through, so one spec can cover the
    conv and the linear points of a network.
    """

    def __init__(self, size: int) -> None:
        self.size = _positive_int(size, "avgpool size")

    def transform(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return x
        if x.dim() == 3:
            return F.adaptive_avg_pool1d(x, min(self.size, x.shape[2]))
        if x.dim() == 4:
            return F.adaptive_avg_pool2d(x, (min(self.size, x.shape[2]), min(self.size, x.shape[3])))
        raise ValueError(
            f"avgpool expects activations of shape (B, d), (B, C, L) or (B, C, H, W), got {tuple(x.shape)}"
        )

    def __repr__(self) -> str:
        return f"AvgPool({self.size})"


class RandomProjection:
    """Flatten, then multiply by a fixed Gaussian matrix G (d_in, dim) with entries N(0, 1/dim).

    The 1/sqrt(dim) scale keeps squared norms in expectation (Johnson-Lindenstrauss).
    G depends only on (seed, d_in): it is drawn on the CPU from torch.Generator().manual_seed(seed)
    as torch.randn(d_in, dim) / sqrt(dim), so it is the same for every batch, call and device.
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim = _positive_int(dim, "project dim")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"project seed must be an int, got {seed!r}")
        self.seed = seed
        self._matrices: dict[tuple[int, torch.device], Tensor] = {}

    def matrix(self, d_in: int, device: torch.device | str = "cpu") -> Tensor:
        """The projection matrix (d_in, dim) float32 on `device`."""
        key = (d_in, torch.device(device))
        if key not in self._matrices:
            generator = torch.Generator().manual_seed(self.seed)
            g = torch.randn(d_in, self.dim, generator=generator) / math.sqrt(self.dim)
            self._matrices[key] = g.to(key[1])
        return self._matrices[key]

    def transform(self, x: Tensor) -> Tensor:
        x = x.flatten(1).float()
        return x @ self.matrix(x.shape[1], x.device)

    def __repr__(self) -> str:
        return f"RandomProjection({self.dim}, seed={self.seed})"


class PCA:
    """Project flattened activations on their top `dim` principal components (exact, not randomised).

    fit(x) on x (m, ...) works in float64 on the CPU: it eigendecomposes the (d, d) covariance
    when d <= m, else the (m, m) Gram matrix of the centred data (the same components, cheaper
    when there are fewer samples than dimensions). Fit it on training-split activations
    (fit_reducers does so), never on the probe set the estimates are computed on.

    After fit: mean_ (d,), components_ (dim, d) orthonormal rows, each signed so that its
    largest-magnitude entry is positive; explained_variance_ (dim,) with ddof=1;
    explained_variance_ratio_ (dim,) = explained_variance_ / total variance.
    """

    def __init__(self, dim: int) -> None:
        self.dim = _positive_int(dim, "pca dim")
        self.mean_: Tensor | None = None
        self.components_: Tensor | None = None
        self.explained_variance_: Tensor | None = None
        self.explained_variance_ratio_: Tensor | None = None
        self._on_device: dict[torch.device, tuple[Tensor, Tensor]] = {}

    @property
    def fitted(self) -> bool:
        return self.components_ is not None

    def fit(self, x: Tensor) -> PCA:
        x = torch.as_tensor(x).detach().flatten(1).to("cpu", torch.float64)
        m, d = x.shape
        if m < 2 or self.dim > min(m - 1, d):
            raise ValueError(
                f"pca dim={self.dim} needs at least dim + 1 fitting samples and at most as many "
                f"dimensions as the activation has; got {m} samples of dimension {d}"
            )
        mean = x.mean(0)
        xc = x - mean
        if d <= m:
            eigenvalues, eigenvectors = torch.linalg.eigh(xc.T @ xc)  # ascending
            top = eigenvalues.flip(0)[: self.dim]
            components = eigenvectors.flip(1)[:, : self.dim].T  # (dim, d)
        else:
            eigenvalues, u = torch.linalg.eigh(xc @ xc.T)
            top = eigenvalues.flip(0)[: self.dim]
            components = (xc.T @ u.flip(1)[:, : self.dim] / top.clamp_min(1e-300).sqrt()).T
        tolerance = eigenvalues.max().clamp_min(0.0) * max(m, d) * torch.finfo(torch.float64).eps
        rank = int((eigenvalues > tolerance).sum())
        if rank < self.dim:
            raise ValueError(
                f"pca dim={self.dim} exceeds the rank {rank} of the fitting activations; choose dim <= {rank}"
            )
        largest = components.abs().argmax(1)
        signs = components.gather(1, largest[:, None]).sign()
        total_variance = (xc**2).sum() / (m - 1)
        self.mean_ = mean.float()
        self.components_ = (components * signs).float()
        self.explained_variance_ = (top / (m - 1)).float()
        self.explained_variance_ratio_ = (top / (m - 1) / total_variance).float()
        self._on_device = {}
        return self

    def transform(self, x: Tensor) -> Tensor:
        if self.components_ is None:
            raise ValueError("PCA is not fitted; fit it on training activations first (see fit_reducers)")
        x = x.flatten(1).float()
        if x.shape[1] != self.components_.shape[1]:
            raise ValueError(
                f"PCA was fitted on {self.components_.shape[1]}-dim activations, got {x.shape[1]} dims"
            )
        if x.device not in self._on_device:
            self._on_device[x.device] = (self.mean_.to(x.device), self.components_.to(x.device))
        mean, components = self._on_device[x.device]
        return (x - mean) @ components.T

    def __repr__(self) -> str:
        return f"PCA({self.dim}, fitted={self.fitted})"


REDUCTION_STEPS: dict[str, type] = {"avgpool": AvgPool, "project": RandomProjection, "pca": PCA}
_STEP_TYPES = tuple(REDUCTION_STEPS.values())


class Reduction:
    """Steps applied in order to a batch of activations, then flattened to (B, d) float32."""

    def __init__(self, steps: Sequence[Any] = ()) -> None:
        self.steps = tuple(steps)

    @property
    def fit_start(self) -> int | None:
        """Index of the first step that is fitted on data (PCA), or None."""
        return next((i for i, step in enumerate(self.steps) if hasattr(step, "fit")), None)

    @property
    def fitted(self) -> bool:
        return all(getattr(step, "fitted", True) for step in self.steps)

    def transform(self, x: Tensor) -> Tensor:
        x = x.float()
        for step in self.steps:
            x = step.transform(x)
        return x.flatten(1)

    def fit(self, x: Tensor, *, start: int = 0) -> Reduction:
        """Fit the steps from `start` on, given x = activations already passed through steps[:start]."""
        x = torch.as_tensor(x).float()
        for step in self.steps[start:]:
            if hasattr(step, "fit"):
                step.fit(x)
            x = step.transform(x)
        return self

    def __repr__(self) -> str:
        return f"Reduction({list(self.steps)})"


def make_reduction(spec: Any) -> Reduction:
    """A Reduction from a spec: None, a Reduction, a step object, ("avgpool", s) /
    ("project", d[, seed]) / ("pca", d), or a list of those (composed in order)."""
    if spec is None:
        return Reduction()
    if isinstance(spec, Reduction):
        return spec
    if isinstance(spec, _STEP_TYPES):
        return Reduction((spec,))
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str):
        name, *args = spec
        if name not in REDUCTION_STEPS:
            raise ValueError(f"unknown reduction {name!r}; valid names: {sorted(REDUCTION_STEPS)}")
        return Reduction((REDUCTION_STEPS[name](*args),))
    if isinstance(spec, (list, tuple)):
        return Reduction(tuple(step for part in spec for step in make_reduction(part).steps))
    raise TypeError(
        "reduce must be None, a Reduction, a step, a tuple like ('avgpool', 4), ('project', 128) or "
        f"('pca', 64), a list of those, or a dict point -> one of those; got {spec!r}"
    )


def _reductions_for(reduce: Any, names: Sequence[str]) -> dict[str, Reduction]:
    """One Reduction per point, each its own copy so that per-point state (PCA fits) is never shared."""
    if isinstance(reduce, Mapping):
        unknown = [key for key in reduce if key not in names]
        if unknown:
            raise ValueError(f"reduce has entries for points that are not captured: {unknown}; captured: {list(names)}")
        return {name: copy.deepcopy(make_reduction(reduce.get(name))) for name in names}
    return {name: copy.deepcopy(make_reduction(reduce)) for name in names}


# ---------------------------------------------------------------- points


@dataclasses.dataclass(frozen=True)
class _Point:
    name: str
    module: nn.Module
    where: str  # "output": forward hook; "input": forward pre-hook on the first positional input


def _is_localnet(model: nn.Module) -> bool:
    return hasattr(model, "probe_points") and hasattr(model, "probe_point")


def _point_names(points: str | Iterable[str]) -> list[str]:
    names = [points] if isinstance(points, str) else list(points)
    if not names:
        raise ValueError("points is empty; pass at least one point name")
    if any(not isinstance(name, str) for name in names):
        raise TypeError(f"points must be names (str), got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"points names a point more than once: {duplicates}")
    return names


def _check_known(names: Sequence[str], valid: Sequence[str], model: nn.Module) -> None:
    unknown = [name for name in names if name not in set(valid)]
    if unknown:
        raise UnknownPointError(
            f"unknown point(s) {unknown} for {type(model).__name__}; valid names: {list(valid)}"
        )


def _resolve_points(model: nn.Module, points: str | Iterable[str] | None) -> list[_Point]:
    if _is_localnet(model):
        valid = tuple(model.probe_points)
        names = list(valid) if points is None else _point_names(points)
        _check_known(names, valid, model)
        resolved = [model.probe_point(name) for name in names]
        return [_Point(name, p.target, p.where) for name, p in zip(names, resolved)]
    modules = dict(model.named_modules())
    modules.pop("", None)  # the model itself: its output is what model(x) returns
    if points is None:
        examples = list(modules)[:8]
        raise ValueError(
            f"points is required for a {type(model).__name__} (it has no probe_points); pass names "
            f"from model.named_modules(), e.g. {examples} ({len(modules)} in total)"
        )
    names = _point_names(points)
    _check_known(names, tuple(modules), model)
    return [_Point(name, modules[name], "output") for name in names]


def _first_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    raise TypeError(f"point {name!r} produced {type(value).__name__}, which holds no tensor to capture")


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


def _batches(data: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """(x, y or None) batches from a tensor, an (x, y) tuple, or an iterable of batches."""
    if isinstance(data, (Tensor, np.ndarray)):
        x, y = _as_tensor(data, "data"), None
    elif isinstance(data, tuple) and len(data) == 2 and all(isinstance(v, (Tensor, np.ndarray)) for v in data):
        x, y = _as_tensor(data[0], "data x"), _as_tensor(data[1], "data y")
        if len(x) != len(y):
            raise ValueError(f"data (x, y) has {len(x)} inputs but {len(y)} labels")
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
        yield from (_split_batch(item) for item in data)
        return
    else:
        raise TypeError(
            "data must be a tensor of inputs, an (x, y) tuple of tensors, or an iterable of x or (x, y) "
            f"batches (e.g. a DataLoader; wrap a Dataset in one), got {type(data).__name__}"
        )
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size], None if y is None else y[start : start + batch_size]


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


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


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
) -> Captured:
    """Run `model` over `data` and record the activations at `points`, reduced batch by batch.

    model: a LocalNet (points default to all its probe points) or any nn.Module (points are
        `named_modules()` names and must be given; a tuple/list output gives its first tensor).
    data: a tensor of inputs (n, ...), an (x, y) tuple of tensors, or an iterable of x or
        (x, y) batches (DataLoader, TensorLoader). Use a list, not a tuple, for a sequence of batches.
    reduce: one spec for all points or a dict point -> spec (see the module docstring); PCA steps
        must have been fitted (fit_reducers).
    batch_size: for a tensor or (x, y) input; iterables keep their own batches.
    device: where the forward runs; default the model's own device. A model elsewhere is moved
        there for the call and moved back afterwards.
    max_samples: stop after this many samples (the last batch is cut; no further batch is read).

    The model runs in eval mode under torch.no_grad(); every module's training flag, the model's
    device and its hooks are restored afterwards, also when the forward raises.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    batch_size = _positive_int(batch_size, "batch_size")
    if max_samples is not None:
        max_samples = _positive_int(max_samples, "max_samples")
    targets = _resolve_points(model, points)
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
                handles.append(point.module.register_forward_pre_hook(input_hook(point.name)))
            else:
                handles.append(point.module.register_forward_hook(output_hook(point.name)))
        model.eval()
        if run_device != home:
            model.to(run_device)
        with torch.no_grad():
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
) -> dict[str, Reduction]:
    """Fit the PCA steps of `reduce` on the activations `model` produces on `data` (the fitting set).

    Returns point -> Reduction for every point (fitted copies; the `reduce` given is not changed),
    ready for capture(model, probe_data, points, reduce=<this>). The steps before a point's first PCA
    run batch by batch; PCA is then fitted exactly on the first `max_samples` samples of `data`
    (a shuffled loader makes them a random subsample; None uses all of them).
    Arguments are those of capture().
    """
    names = [point.name for point in _resolve_points(model, points)]
    reductions = _reductions_for(reduce, names)
    starts = {name: r.fit_start for name, r in reductions.items() if r.fit_start is not None}
    if starts:
        heads = {name: Reduction(reductions[name].steps[:start]) for name, start in starts.items()}
        inputs = capture(
            model, data, list(heads), heads, batch_size=batch_size, device=device, max_samples=max_samples
        )
        for name, start in starts.items():
            reductions[name].fit(inputs[name], start=start)
    return reductions
