"""When an estimate cannot be trusted as it stands: ties, degenerate scale, dimension, ceilings.

Each check returns a note (a one-line reason) or None; `caution` warns with every note
(EstimatorWarning) and returns them, so that the MIResult records in `notes` what the warning said.

Thresholds, and why:
- ties: any sample whose row (or a column value) repeats exactly. k-NN estimators treat them with
  the mixed discrete-continuous rule of Gao, Kannan, Oh & Viswanath (2017) and say so.
- k-NN dimension: d > log2(n). The k-NN distances of n samples resolve the density only when n
  grows exponentially with the (intrinsic) dimension; Kraskov et al. (2004) show the low bias
  growing with d, and at d = 10, n = 2000 KSG already loses 20-25% of a Gaussian MI.
- Gaussian dimension: dx + dy > n / 10. The plug-in bias is about dx * dy / (2n) nats and the
  shrinkage needed above that pulls every correlation towards 0.
- ceiling: a k-NN estimate cannot exceed psi(n) - psi(k) (every marginal count at its minimum);
  within 80% of it the estimate is saturated and biased low.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Iterable

import torch

from .interface import MIResult
from .validation import constant_columns


class EstimatorWarning(UserWarning):
    """An estimate whose number comes with a caveat (also recorded in MIResult.notes)."""


def duplicate_fraction(a: torch.Tensor) -> float:
    """Fraction of the n samples of a (n, d) or (n,) whose value repeats exactly in another sample."""
    counts = torch.unique(a, dim=0, return_counts=True)[1]
    return float(counts[counts > 1].sum()) / a.shape[0]


def tie_note(name: str, block: torch.Tensor) -> str | None:
    """Duplicate rows and the most tied column of block (n, d), or None when no value repeats."""
    per_column = [duplicate_fraction(block[:, j]) for j in range(block.shape[1])]
    worst = max(range(len(per_column)), key=per_column.__getitem__)
    if per_column[worst] == 0.0:
        return None
    return (f"{name}: {duplicate_fraction(block):.0%} of rows and {per_column[worst]:.0%} of column {worst} are exact "
            f"duplicates (discrete values, ReLU zeros)")


POINT_MASS = 0.05  # share of samples on one repeated value that makes it a point mass


def check_no_mixed_columns(name: str, block: torch.Tensor, method: str) -> None:
    """ValueError when a column of block (n, d) mixes a point mass with continuous values (ReLU features).

    Such columns put samples on faces of different dimension, and the KSG counts (with or without
    the mixed rule) then read the difference as dependence: 0.06 nats for two independent 1-D ReLU
    features at n = 2000, 0.14 in 3 + 3 dimensions. Fully discrete and tie-free columns pass.
    """
    n = block.shape[0]
    for j in range(block.shape[1]):
        counts = torch.unique(block[:, j], return_counts=True)[1]
        mass, unique = float(counts.max()) / n, float((counts == 1).sum()) / n
        if int(counts.max()) > 1 and mass >= POINT_MASS and unique >= POINT_MASS:
            raise ValueError(
                f"{name} column {j} mixes a repeated value ({mass:.0%} of samples, e.g. ReLU zeros) with continuous "
                f"values ({unique:.0%}); {method} is biased on such data: use method='auto' (normal scores) for "
                f"continuous y, or 'mixed_knn' / a probe for labels"
            )


def tie_notes(blocks: dict[str, torch.Tensor], treatment: str) -> tuple[str, ...]:
    """A tie note per named block that has ties, followed by `treatment` (how the method handles them)."""
    notes = tuple(note for name, block in blocks.items() if (note := tie_note(name, block)))
    return notes + (treatment,) if notes else ()


def constant_note(name: str, block: torch.Tensor) -> str | None:
    """Constant columns of block (n, d) (they carry no information and standardise to 0), or None."""
    constant = constant_columns(block)
    if not bool(constant.any()):
        return None
    return f"{name}: {int(constant.sum())} of {block.shape[1]} column(s) constant (no information; set to 0)"


def knn_dimension_note(n: int, d: int) -> str | None:
    """k-NN estimators in d joint dimensions from n samples: a note when d > log2(n)."""
    if d <= math.log2(n):
        return None
    return (f"dimension {d} is high for n={n} samples (k-NN estimates are reliable for d <= log2(n) = "
            f"{math.log2(n):.1f}); the value is likely far below the true MI: reduce the dimension or use a bound")


def gaussian_dimension_note(n: int, d: int) -> str | None:
    """The Gaussian plug-in in d = dx + dy dimensions from n samples: a note when d > n / 10."""
    if 10 * d <= n:
        return None
    return (f"dimension {d} is high for n={n} samples (Gaussian plug-in is reliable for d <= n/10); shrinkage "
            f"dominates and the value is pulled towards 0")


def ceiling_note(value: float, n: int, k: int) -> str | None:
    """A k-NN value within 80% of its ceiling psi(n) - psi(k), or None."""
    ceiling = float(torch.special.digamma(torch.tensor(float(n))) - torch.special.digamma(torch.tensor(float(k))))
    if value < 0.8 * ceiling:
        return None
    return (f"value {value:.3f} nats is near the k-NN ceiling psi(n) - psi(k) = {ceiling:.3f}: saturated, biased "
            f"low; more samples are needed")


def caution(notes: Iterable[str | None]) -> tuple[str, ...]:
    """Warn once per note (EstimatorWarning) and return the notes that are not None."""
    kept = tuple(note for note in notes if note)
    for note in kept:
        warnings.warn(note, EstimatorWarning, stacklevel=3)
    return kept


def with_notes(result: MIResult, notes: Iterable[str]) -> MIResult:
    """result with `notes` appended to its notes."""
    notes = tuple(notes)
    return dataclasses.replace(result, notes=result.notes + notes) if notes else result
