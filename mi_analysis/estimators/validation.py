"""Input checks shared by all estimators: arrays in, clean torch tensors out.

Accepted inputs: numpy arrays, torch tensors on any device (they stay on that device;
numpy and lists land on the CPU), and nested lists. Gradients are detached.

Scale: every column's range (max - min) must be finite in float64, so that differences between
samples are (values up to ~1e307 are fine; 1e308 and -1e308 in one column are refused).

Constant columns: a column with a single value carries no information about anything. It is
kept (so shapes stay what the caller passed) and `standardize` maps it to exactly 0 instead of
dividing by a zero spread; the estimators that standardise say so in their notes.

Labels: class labels must have an integer or bool dtype. Float arrays are never labels, not even
when every value is integral: methods taking labels refuse them, and methods taking either kind
(y_type "any") treat them as continuous. Convert class ids with y.astype(int).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_NUMERIC_KINDS = "biuf"  # numpy dtype kinds accepted: bool, int, unsigned, float


def _to_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        if a.is_complex():
            raise TypeError(f"{name} must be real-valued, got complex dtype {a.dtype}")
        return a.detach()
    arr = np.asarray(a)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(f"{name} must be a numeric array (bool/int/float), got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point():
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"{name} contains {bad} NaN/inf value(s); remove or impute them first")


def as_samples(x: Any, name: str = "x", *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """`x` as a finite float tensor (n, d); 1-D input becomes (n, 1).

    dtype: torch.float64 (default) or torch.float32.
    """
    if dtype not in (torch.float64, torch.float32):
        raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
    t = _to_tensor(x, name)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if t.dim() != 2:
        raise ValueError(
            f"{name} must have shape (n,) or (n, d), got {tuple(t.shape)}; flatten features first "
            f"({name}.reshape(n, -1))"
        )
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}; need n >= 2 samples and d >= 1 features")
    _check_finite(t, name)
    _check_range(t, name)
    return t.to(dtype)


def _check_range(t: torch.Tensor, name: str) -> None:
    if not t.is_floating_point():
        return
    t = t.to(torch.float64)
    spread = t.amax(dim=0) - t.amin(dim=0)
    if not bool(torch.isfinite(spread).all()):
        col = int((~torch.isfinite(spread)).nonzero()[0])
        raise ValueError(
            f"{name} column {col} spans more than float64 can subtract (max - min overflows); rescale {name} first"
        )


def as_labels(y: Any, name: str = "y") -> torch.Tensor:
    """`y` as int64 class labels (n,) from an integer or bool array (float arrays are refused, see module)."""
    t = _to_tensor(y, name)
    if t.dim() != 1:
        raise ValueError(f"{name} labels must be 1-D (n,), got shape {tuple(t.shape)}; pass {name}.ravel()")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty; need n >= 2 labels")
    if t.is_floating_point():
        raise ValueError(
            f"{name} labels must be integers (integer or bool dtype), got {t.dtype}; class ids stored as floats: pass "
            f"{name}.astype(int); a continuous {name}: use a method that takes continuous y"
        )
    labels = t.to(torch.int64)
    if labels.unique().numel() < 2:
        raise ValueError(
            f"{name} has a single class ({labels[0].item()}); MI with a constant is 0, nothing to estimate"
        )
    return labels


def is_labels(y: Any) -> bool:
    """True when y looks like class labels: a 1-D array of integer or bool dtype."""
    if isinstance(y, torch.Tensor):
        return y.dim() == 1 and not y.is_floating_point() and not y.is_complex()
    arr = np.asarray(y)
    return arr.ndim == 1 and arr.dtype.kind in "biu"


def check_same_n(x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> int:
    """Number of samples; ValueError when x and y disagree."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same number of samples, got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 samples, got {x.shape[0]}")
    return int(x.shape[0])


def check_neighbors(n: int, k: int, name: str = "k") -> None:
    """k-NN estimators need k >= 1 and n > k samples."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if n <= k:
        raise ValueError(f"{name}={k} neighbours need more than {k} samples, got n={n}")


def constant_columns(x: torch.Tensor) -> torch.Tensor:
    """Bool mask (d,) of the columns of x (n, d) that hold a single value."""
    return (x == x[:1]).all(dim=0)


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit standard deviation per column; constant columns become exactly 0.

    Each column is first divided by its largest |value| (a power of two, so exactly), so that
    squares neither overflow (x ~ 1e160) nor underflow (x ~ 1e-170) in the variance.
    """
    largest = x.abs().amax(dim=0, keepdim=True)
    scale = torch.where(largest > 0, torch.exp2(torch.floor(torch.log2(largest))), torch.ones_like(largest))
    x = x / scale
    centred = x - x.mean(dim=0, keepdim=True)
    std = centred.std(dim=0, unbiased=False, keepdim=True)
    return torch.where(std > 0, centred / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(centred))


def jitter(x: torch.Tensor, scale: float, generator: torch.Generator) -> torch.Tensor:
    """x plus N(0, scale^2) noise drawn from `generator` (a CPU generator, so results match across devices)."""
    if scale == 0:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(device=x.device, dtype=x.dtype)
    return x + scale * noise
