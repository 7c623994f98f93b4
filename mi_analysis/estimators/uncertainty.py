"""Standard errors, confidence intervals and permutation tests shared by the estimators.

Three tools, for three kinds of estimator:

- `subsample_result` (closed-form and k-NN estimators): the value comes from all n samples; its
  spread comes from m disjoint random subsamples of size n // m each. Their sample variance s^2
  is the variance of the estimator at size n/m. Assuming Var ~ c / n (true to first order for
  KSG, plug-in and kernel estimators), the variance at size n is s^2 * (n/m) / n = s^2 / m, so
  stderr = s / sqrt(m). The 95% CI is value +- t_{0.975, m-1} * stderr (Student t because s^2 has
  only m - 1 degrees of freedom). The subsamples only measure spread: bias that depends on n (k-NN
  estimators are biased low, more so at small n) is not in the CI.
- `bootstrap` (trained estimators): resample held-out per-sample terms with replacement.
- `permutation_pvalue`: p-value of independence by permuting y against x.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import torch
from scipy import stats

from .diagnostics import EstimatorWarning
from .interface import MIResult

Z_95 = 1.959963984540054  # standard normal 97.5% quantile


def ci_from_stderr(value: float, stderr: float, dof: int | None = None) -> tuple[float, float]:
    """Two-sided 95% interval value +- q * stderr; q from Student t with `dof` when given, else normal."""
    if not math.isfinite(stderr):
        return (math.nan, math.nan)
    q = Z_95 if dof is None else float(stats.t.ppf(0.975, dof))
    return (value - q * stderr, value + q * stderr)


def subsample_stderr(
    value_of: Callable[[torch.Tensor], float], n: int, num_subsets: int, seed: int
) -> tuple[float, list[float]]:
    """stderr at size n from `num_subsets` disjoint subsamples; value_of(indices (n//m,) int64) -> float.

    Returns (stderr, subsample values). See the module docstring for the 1/sqrt(m) scaling.
    """
    if num_subsets < 2:
        raise ValueError(f"num_subsets must be >= 2 to measure a spread, got {num_subsets}")
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    size = n // num_subsets
    values = [float(value_of(order[i * size : (i + 1) * size])) for i in range(num_subsets)]
    spread = float(torch.tensor(values, dtype=torch.float64).std(unbiased=True))
    return spread / math.sqrt(num_subsets), values


def subsample_result(
    value_of: Callable[[torch.Tensor | None], float],
    n: int,
    *,
    kind: str,
    method: str,
    params: dict[str, Any],
    seed: int,
    num_subsets: int = 10,
    min_subset_size: int = 20,
    notes: Sequence[str] = (),
) -> MIResult:
    """MIResult with value on all samples and stderr/CI by disjoint subsampling.

    value_of(None) is the full-sample value; value_of(indices) the value on those rows.
    num_subsets is lowered so that every subset has >= min_subset_size rows; with fewer than 2
    such subsets (n < 2 * min_subset_size: the minimum n for a CI) stderr and ci are NaN, and a
    warning and a note say why.
    """
    if isinstance(num_subsets, bool) or not isinstance(num_subsets, int) or num_subsets < 2:
        raise ValueError(f"num_subsets must be an int >= 2 (subsamples for the stderr), got {num_subsets!r}")
    value = float(value_of(None))
    m = min(num_subsets, n // min_subset_size)
    notes = tuple(notes)
    if m >= 2:
        stderr, _ = subsample_stderr(value_of, n, m, seed + 1)
        ci = ci_from_stderr(value, stderr, dof=m - 1)
    else:
        stderr, ci = math.nan, (math.nan, math.nan)
        reason = (f"no stderr/CI: n={n} is too small for 2 subsamples of {min_subset_size} rows (a CI needs "
                  f"n >= {2 * min_subset_size})")
        warnings.warn(reason, EstimatorWarning, stacklevel=3)
        notes += (reason,)
    params = {**params, "ci_subsets": m if m >= 2 else 0}
    return MIResult(value=value, stderr=stderr, ci=ci, kind=kind, method=method, params=params, n=n, notes=notes)


def bootstrap(
    terms: torch.Tensor | Sequence[torch.Tensor],
    statistic: Callable[..., torch.Tensor | float] | None = None,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """(stderr, 95% percentile CI) of statistic(terms) by resampling rows with replacement.

    terms: one tensor (n, ...) of per-sample held-out terms, or a sequence of tensors that share
    their first dimension n (resampled with the same rows, e.g. joint and marginal critic scores).
    statistic: called with the resampled tensor(s) (unpacked when a sequence), returns a scalar;
    default: the mean of a single tensor.
    """
    tensors = [terms] if isinstance(terms, torch.Tensor) else list(terms)
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"bootstrap terms must share their first dimension, got {[t.shape[0] for t in tensors]}")
    if n < 2:
        raise ValueError(f"bootstrap needs at least 2 terms, got {n}")
    if statistic is None:
        if len(tensors) != 1:
            raise ValueError("bootstrap over several term tensors needs a statistic")
        statistic = torch.mean
    gen = torch.Generator().manual_seed(seed)
    values = torch.empty(num_resamples, dtype=torch.float64)
    for b in range(num_resamples):
        rows = torch.randint(n, (n,), generator=gen).to(tensors[0].device)
        values[b] = float(statistic(*(t[rows] for t in tensors)))
    low, high = torch.quantile(values, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(values.std(unbiased=True)), (low, high)


def permutation_pvalue(
    value_of: Callable[[torch.Tensor], float], n: int, observed: float, num_permutations: int, seed: int
) -> float:
    """P-value of "x and y are independent": (1 + #{null >= observed}) / (1 + P).

    value_of(perm) -> the estimate with y[perm] paired against x, perm a permutation of range(n).
    The +1 counts the observed pairing as one draw from the null, so p is never 0.
    """
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be >= 1, got {num_permutations}")
    gen = torch.Generator().manual_seed(seed)
    exceed = sum(value_of(torch.randperm(n, generator=gen)) >= observed for _ in range(num_permutations))
    return (1 + exceed) / (1 + num_permutations)
