"""Differences of two sample means with a 95% CI and a p-value: paired by sample, or unpaired.

Paired (both values are means of per-sample terms over the SAME held-out samples, MIResult.terms):
the bootstrap draws B resamples of the n sample positions with replacement and recomputes both
means on each with the SAME rows, so whatever the two sides share sample by sample (hard samples
are hard for both) cancels in the difference. CI: the percentile interval (2.5% and 97.5%
quantiles of the B resampled differences). p-value of "no difference": two-sided, from the normal
approximation with the bootstrap standard error, p = 2 Phi(-|diff| / se), because a p-value
counted from B resamples cannot go below 1/B, while a Holm adjustment over many boundaries needs
smaller ones (for a mean of n >= a few hundred terms the normal approximation is accurate).
The resamples depend only on (n, seed): every comparison on one sample set uses the same ones, and
a ratio of differences (the recovered fraction) is computed on them too.

The terms of one held-out sample are not exactly independent of the others' for k-NN and kernel
estimators (neighbours are shared) nor for cross-fitted probes (fitted on the other folds); the
bootstrap treats them as independent, as the estimators' own bootstrap CIs do.

Unpaired (an estimator without per-sample terms, or different sample sets): the difference with
stderr sqrt(se_a^2 + se_b^2) from each side's CI half-width / 1.96, normal CI and p-value.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch
from scipy import stats

from mi_analysis.estimators.uncertainty import Z_95

NUM_RESAMPLES = 2000
RESAMPLE_CHUNK = 250  # resamples drawn at once (chunk x n int64 indices)


@dataclasses.dataclass(frozen=True)
class Difference:
    """a - b in the units of the values; ci: 95%; p_value: two-sided, of a - b = 0; n: samples per side."""

    diff: float
    ci_low: float
    ci_high: float
    stderr: float
    p_value: float
    n: int
    paired: bool


@functools.lru_cache(maxsize=4)
def resample_counts(n: int, num_resamples: int, seed: int) -> torch.Tensor:
    """(B, n) float32: how often each of n samples is drawn in each of B resamples with replacement.
    Cached: every comparison on one sample set reuses them (B x n x 4 bytes, 16 MB for n = B = 2000)."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.zeros(num_resamples, n, dtype=torch.float32)
    for start in range(0, num_resamples, RESAMPLE_CHUNK):
        b = min(RESAMPLE_CHUNK, num_resamples - start)
        rows = torch.randint(n, (b, n), generator=gen)
        counts[start:start + b].scatter_add_(1, rows, torch.ones(b, n, dtype=torch.float32))
    return counts


def bootstrap_means(terms: np.ndarray, *, num_resamples: int = NUM_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of every row of terms (m, n) on B resamples of the n columns drawn with replacement, the same
    resamples for every row: (m, B) float64. The resamples depend only on (n, num_resamples, seed).
    Each row is centred in float64 first, so the float32 product only carries deviations from the mean."""
    terms = torch.as_tensor(np.asarray(terms, dtype=np.float64))
    m, n = terms.shape
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 samples, got {n}")
    centre = terms.mean(1, keepdim=True)
    deviations = (terms - centre).float() @ resample_counts(n, num_resamples, seed).T  # (m, B)
    return (centre + deviations.double() / n).numpy()


def normal_p_value(diff: float, stderr: float) -> float:
    """Two-sided p-value of diff = 0 for a normal estimate with this standard error."""
    if not math.isfinite(stderr) or not math.isfinite(diff):
        return math.nan
    if stderr == 0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * stats.norm.sf(abs(diff) / stderr))


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, num_resamples: int = NUM_RESAMPLES, seed: int = 0
) -> Difference:
    """mean(a) - mean(b) for per-sample terms a, b (n,) of the same samples in the same order."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired terms must be two (n,) arrays of the same samples, got {a.shape} and {b.shape}")
    diff = float(a.mean() - b.mean())
    resampled = bootstrap_means(a[None] - b[None], num_resamples=num_resamples, seed=seed)[0]
    low, high = np.quantile(resampled, [0.025, 0.975])
    stderr = float(resampled.std(ddof=1))
    return Difference(diff, float(low), float(high), stderr, normal_p_value(diff, stderr), len(a), True)


def stderr_from_ci(ci_low: float, ci_high: float) -> float:
    """Standard error implied by a symmetric normal 95% CI (NaN when the CI is)."""
    return (ci_high - ci_low) / (2 * Z_95)


def unpaired_difference(a: float, se_a: float, b: float, se_b: float, n: int) -> Difference:
    """a - b of two independent estimates with standard errors se_a, se_b: normal CI and p-value."""
    diff, stderr = a - b, math.hypot(se_a, se_b)
    return Difference(diff, diff - Z_95 * stderr, diff + Z_95 * stderr, stderr, normal_p_value(diff, stderr), n, False)


def ratio_of_differences(
    contsup: np.ndarray, gll: np.ndarray, e2e: np.ndarray, *, num_resamples: int = NUM_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """(ContSup - GLL) / (E2E - GLL) of the means of per-sample terms of the same samples, with the 95%
    percentile CI over the same resamples as paired_difference: (value, low, high)."""
    means = bootstrap_means(np.stack([contsup, gll, e2e]), num_resamples=num_resamples, seed=seed)
    value = float((np.mean(contsup) - np.mean(gll)) / (np.mean(e2e) - np.mean(gll)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (means[0] - means[1]) / (means[2] - means[1])
    low, high = np.quantile(ratios[np.isfinite(ratios)], [0.025, 0.975])
    return value, float(low), float(high)
