"""Several training seeds of one configuration: a mean with a CI that holds both sources of variance.

Each seed s gives an estimate v_s = mu_s + e_s: mu_s is what that seed's network holds (it varies
from seed to seed with variance tau^2) and e_s the estimator's error on the held-out samples (its
variance se_s^2 is the square of the row's standard error). The mean over S seeds has variance
(tau^2 + mean se_s^2) / S, and the sample variance s^2 of the v_s estimates tau^2 + mean se_s^2
without bias, so

    mean = (1/S) sum v_s,   stderr = s / sqrt(S),   95% CI = mean +- t_{0.975, S-1} stderr

covers both sources (Student t: s^2 has S - 1 degrees of freedom; with 2 or 3 seeds the interval is
wide, honestly). Which source dominates: the sample part mean(se_s^2) against the seed part
tau^2 = max(s^2 - mean(se_s^2), 0) (method of moments, as in a one-way random-effects model).
A difference of two modes is aggregated the same way from its per-seed paired differences, seed i
of A paired with seed i of B (common random numbers: the same seed gives both runs the same data
order and initialisation of the shared parts, so what they share cancels).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import stats

from .paired import stderr_from_ci


@dataclasses.dataclass(frozen=True)
class SeedMean:
    """Mean over seeds with its 95% CI, the two-sided p-value of mean = 0 (t test), and the variance
    parts per seed: var_seeds (tau^2) and var_samples (mean se_s^2); dominant: which is larger."""

    mean: float
    ci_low: float
    ci_high: float
    stderr: float
    p_value: float
    seeds: int
    var_seeds: float
    var_samples: float

    @property
    def dominant(self) -> str:
        if math.isnan(self.var_seeds) or math.isnan(self.var_samples):
            return ""
        return "seeds" if self.var_seeds > self.var_samples else "samples"


def seed_mean(values: Sequence[float], stderrs: Sequence[float]) -> SeedMean:
    """Aggregate per-seed estimates `values` with their standard errors `stderrs` (module docstring)."""
    v, se = np.asarray(values, dtype=np.float64), np.asarray(stderrs, dtype=np.float64)
    if v.shape != se.shape or v.ndim != 1:
        raise ValueError(f"values and stderrs must be two lists of one number per seed, got {v.shape} and {se.shape}")
    if len(v) < 2:
        raise ValueError(f"a mean over seeds needs at least 2 seeds, got {len(v)}: train more seeds (--seeds) "
                         "or compare single runs")
    s = len(v)
    mean, spread = float(v.mean()), float(v.var(ddof=1))
    stderr = math.sqrt(spread / s)
    q = float(stats.t.ppf(0.975, s - 1))
    var_samples = float(np.mean(se**2))
    p = float(2 * stats.t.sf(abs(mean) / stderr, s - 1)) if stderr > 0 else (1.0 if mean == 0 else 0.0)
    return SeedMean(mean, mean - q * stderr, mean + q * stderr, stderr, p, s, max(spread - var_samples, 0.0),
                    var_samples)  # fmt: skip


SEED_GROUP = ("mode", "K", "epoch", "point", "quantity", "estimator")
_GROUP = (*SEED_GROUP, "rule")  # rules are never mixed; an empty rule (older tables) is gll


def seed_table(rows: Sequence[dict]) -> list[dict]:
    """One row per (mode, K, epoch, point, quantity, estimator, rule) of mi.csv rows of several seeds: the mean over
    seeds with its 95% CI (seed_mean), seeds, var_seeds, var_samples and dominant_variance. A group with a
    single seed is an error (a mean over seeds was asked for); rows without a seed are left out."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if str(row.get("seed", "")) not in ("", "None"):
            key = (*(str(row[c]) for c in SEED_GROUP), str(row.get("rule") or "gll"))
            groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        seeds = sorted({int(row["seed"]) for row in members})
        if len(seeds) != len(members):
            raise ValueError(f"{dict(zip(_GROUP, key))} has several rows of one seed (seeds {seeds}); aggregate "
                             "one configuration at a time")
        if len(seeds) < 2:
            raise ValueError(f"{dict(zip(_GROUP, key))} has a single seed ({seeds[0]}); a mean over seeds needs "
                             "at least 2 (train more seeds, --seeds)")
        values = [float(row["value"]) for row in members]
        stderrs = [stderr_from_ci(float(row["ci_low"]), float(row["ci_high"])) for row in members]
        agg = seed_mean(values, stderrs)
        first = members[0]
        out.append({
            **{c: first[c] for c in (*SEED_GROUP, "depth", "module", "kind")}, "rule": key[-1], "value": agg.mean,
            "ci_low": agg.ci_low, "ci_high": agg.ci_high, "seeds": agg.seeds, "var_seeds": agg.var_seeds,
            "var_samples": agg.var_samples, "dominant_variance": agg.dominant,
        })  # fmt: skip
    return out
