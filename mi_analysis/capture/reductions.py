"""Reductions applied to activations inside the capture hooks, batch by batch, so that only
n x d_reduced numbers per tap are kept: average pooling, a fixed random projection, PCA (fitted
on the training split, never on the held-out set), token reductions of (B, T, C) activations, and
their compositions."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from mi_analysis._util.checks import positive_int


class AvgPool:
    """Adaptive average pooling of the spatial dims: (B, C, H, W) -> (B, C, s, s), (B, C, L) -> (B, C, s).

    A spatial size already at most s is kept as it is (pooling never upsamples), and
    (B, d) activations without spatial dims pass through, so one spec can cover the
    conv and the linear points of a network.
    """

    def __init__(self, size: int) -> None:
        self.size = positive_int(size, "avgpool size")

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


TOKEN_REDUCTIONS = ("pool", "mean", "cls", "flatten")


class Tokens:
    """Reduce the token axis of (B, T, C) activations (a transformer's units); (B, d) passes through.

    "mean": the average token (B, C). "cls": the first token (B, C), a class token where the model
    puts one first. "pool": average pooling of the token axis to at most `size` tokens (consecutive
    tokens averaged, as AdaptiveAvgPool1d groups them), then flattened (B, <= size * C).
    "flatten": every token, (B, T * C). A (B, T, C) tensor is read as tokens, never as (B, C, L)
    channels, so apply this step only to token activations (the analysis does so for the taps
    whose shape is (T, C)); a later "project" or "pca" step then reduces the flattened tokens.
    """

    def __init__(self, mode: str, size: int | None = None) -> None:
        if mode not in TOKEN_REDUCTIONS:
            raise ValueError(f"tokens reduction must be one of {TOKEN_REDUCTIONS}, got {mode!r}")
        if (mode == "pool") != (size is not None):
            raise ValueError(f"tokens size is given with mode 'pool' only (the tokens kept), got mode={mode!r}, "
                             f"size={size!r}")
        self.mode = mode
        self.size = None if size is None else positive_int(size, "tokens size")

    def transform(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return x
        if x.dim() != 3:
            raise ValueError(f"tokens expects activations of shape (B, T, C) or (B, d), got {tuple(x.shape)}")
        if self.mode == "mean":
            return x.mean(1)
        if self.mode == "cls":
            return x[:, 0]
        if self.mode == "pool":
            x = F.adaptive_avg_pool1d(x.transpose(1, 2), min(self.size, x.shape[1])).transpose(1, 2)
        return x.flatten(1)

    def describe(self, shape) -> str:
        """What the step keeps of per-sample tokens of `shape` (T, C), for a table's notes."""
        num_tokens, channels = shape
        kept = {"mean": "the mean token", "cls": "the first (class) token", "flatten": "every token",
                "pool": f"{min(self.size or 0, num_tokens)} token averages"}[self.mode]
        return f"tokens {num_tokens}x{channels} reduced to {kept} (tokens={self.mode})"

    def __repr__(self) -> str:
        return f"Tokens({self.mode!r})" if self.size is None else f"Tokens({self.mode!r}, {self.size})"


class RandomProjection:
    """Flatten, then multiply by a fixed Gaussian matrix G (d_in, dim) with entries N(0, 1/dim).

    The 1/sqrt(dim) scale keeps squared norms in expectation (Johnson-Lindenstrauss).
    G depends only on (seed, d_in): it is drawn on the CPU from torch.Generator().manual_seed(seed)
    as torch.randn(d_in, dim) / sqrt(dim), so it is the same for every batch, call and device.
    """

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim = positive_int(dim, "project dim")
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
    (fit_reducers does so), never on the held-out set the estimates are computed on.

    After fit: mean_ (d,), components_ (dim, d) orthonormal rows, each signed so that its
    largest-magnitude entry is positive; explained_variance_ (dim,) with ddof=1;
    explained_variance_ratio_ (dim,) = explained_variance_ / total variance.
    """

    def __init__(self, dim: int) -> None:
        self.dim = positive_int(dim, "pca dim")
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


REDUCTION_STEPS: dict[str, type] = {"avgpool": AvgPool, "project": RandomProjection, "pca": PCA, "tokens": Tokens}
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
    ("project", d[, seed]) / ("pca", d) / ("tokens", mode[, size]), or a list of those (composed in order)."""
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
        "reduce must be None, a Reduction, a step, a tuple like ('avgpool', 4), ('project', 128), "
        f"('pca', 64) or ('tokens', 'mean'), a list of those, or a dict point -> one of those; got {spec!r}"
    )


def _reductions_for(reduce: Any, names: Sequence[str]) -> dict[str, Reduction]:
    """One Reduction per point, each its own copy so that per-point state (PCA fits) is never shared."""
    if isinstance(reduce, Mapping):
        unknown = [key for key in reduce if key not in names]
        if unknown:
            raise ValueError(f"reduce has entries for points that are not captured: {unknown}; captured: {list(names)}")
        return {name: copy.deepcopy(make_reduction(reduce.get(name))) for name in names}
    return {name: copy.deepcopy(make_reduction(reduce)) for name in names}


