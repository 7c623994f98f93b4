"""The protocol every mutual-information estimator follows.

This file imports nothing from the rest of the package, so that estimators,
the registry and the tests can all depend on it without cycles.

Units: every value is in nats.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal, Mapping

Kind = Literal["estimate", "lower_bound", "upper_bound", "proxy", "non_shannon"]
KINDS: tuple[str, ...] = ("estimate", "lower_bound", "upper_bound", "proxy", "non_shannon")

# What y an estimator accepts: continuous (n, dy) floats, integer class labels (n,), or both.
YType = Literal["continuous", "labels", "any"]

# What a per-layer analysis pairs h with when the estimator measures I(h; x): the input reduced by
# PCA (critics, k-NN), or the index of the sample (KDE: X is the sample drawn uniformly from the
# held-out set, so I(h + noise; X) <= log N).
X_PAIRINGS: tuple[str, ...] = ("reduced_input", "sample_index")
# How an analysis setting becomes the keyword value: as set, or times the RMS distance of h from its
# mean, sqrt(sum_j var_j(h)) (the value then does not change when a layer is rescaled).
SCALES: tuple[str, ...] = ("absolute", "rms_spread")
# Value types an analysis setting may hold: int >= minimum, positive finite number, non-empty tuple of them.
VALUE_TYPES: tuple[str, ...] = ("int", "number", "numbers")


@dataclasses.dataclass(frozen=True)
class MIResult:
    """One mutual-information number and what it is.

    value:   the estimate in nats.
    stderr:  standard error of `value` in nats (NaN only when it cannot be had, and then `ci` is (NaN, NaN)).
    ci:      (low, high) 95% confidence interval in nats.
    kind:    "estimate" | "lower_bound" | "upper_bound" | "proxy" | "non_shannon".
    method:  registry name of the estimator that produced it (for method="auto": the one auto picked).
    params:  every parameter that determined the value (k, sigma, critic, ...), defaults included.
    n:       number of samples the value was computed from.
    p_value: permutation-test p-value for independence, when asked for (else None).
    notes:   human-readable caveats (e.g. "InfoNCE value within 5% of its log(batch) ceiling").
    terms:   per-sample terms, float64 CPU tensor (n,) indexed like the rows of x, whose mean is `value`
             (up to rounding), for estimators whose value is a mean over samples (registry per_sample=True);
             None otherwise (and where this result's value is not their mean, e.g. a clipped bound).
             Two results on the same samples can be compared by pairing their terms.
    """

    value: float
    stderr: float
    ci: tuple[float, float]
    kind: str
    method: str
    params: dict[str, Any]
    n: int
    p_value: float | None = None
    notes: tuple[str, ...] = ()
    terms: Any = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")

    def to_bits(self) -> "MIResult":
        """The same result with value, stderr and ci converted to bits (for display only)."""
        f = 1.0 / math.log(2.0)
        return dataclasses.replace(
            self,
            value=self.value * f,
            stderr=self.stderr * f,
            ci=(self.ci[0] * f, self.ci[1] * f),
            terms=None if self.terms is None else self.terms * f,
            params={**self.params, "units": "bits"},
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AnalysisParam:
    """A keyword argument of an estimator that a per-layer analysis may set.

    group, name: the analysis setting AnalysisConfig.estimator_params[group][name]; estimators that
        declare the same AnalysisParam share one setting (ksg, ksg2 and mixed_knn read knn.k).
    keyword: the estimator's keyword argument the value is passed as.
    default: the analysis default (may differ from the function's own: cheaper, for many layers).
    value_type: "int" (an int >= minimum), "number" (positive, finite) or "numbers" (a non-empty
        tuple of positive, finite numbers).
    scale: "absolute" (passed as set) or "rms_spread" (times sqrt(sum_j var_j(h)) when that is > 0).
    doc: what the setting does, one line.
    """

    group: str
    name: str
    keyword: str
    default: Any
    doc: str
    value_type: str = "int"
    minimum: int = 1
    scale: str = "absolute"

    def __post_init__(self) -> None:
        if self.value_type not in VALUE_TYPES:
            raise ValueError(f"value_type must be one of {VALUE_TYPES}, got {self.value_type!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {self.scale!r}")
        object.__setattr__(self, "default", self.check(self.default))

    @property
    def setting(self) -> str:
        """The setting's name as analysis reports it, e.g. "knn.k"."""
        return f"{self.group}.{self.name}"

    def check(self, value: Any) -> Any:
        """`value` as stored (numbers as floats, lists as tuples); ValueError naming the setting when it
        does not fit."""
        if self.value_type == "int":
            if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
                raise ValueError(f"{self.setting} must be an int >= {self.minimum}, got {value!r}")
            return value
        if self.value_type == "number":
            if not _positive_number(value):
                raise ValueError(f"{self.setting} must be a positive number, got {value!r}")
            return float(value)
        if not isinstance(value, (list, tuple)) or not value or not all(_positive_number(v) for v in value):
            raise ValueError(f"{self.setting} must be a non-empty list of positive numbers, got {value!r}")
        return tuple(float(v) for v in value)

    def keyword_value(self, value: Any, h: Any) -> Any:
        """The keyword value for activations h (n, d) given the setting's value."""
        if self.scale == "absolute":
            return value
        spread = math.sqrt(float(h.double().var(0).sum()))  # RMS distance of a sample from the mean
        return value * spread if spread > 0 else value


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """Registry entry: what an estimator is, how to call it, and what a per-layer analysis needs to know.

    fn(x, y, **params) -> MIResult, where x is a float64/float32 torch tensor (n, dx) and y is
    either a float tensor (n, dy) or an int64 label tensor (n,), already validated.
    description: what the number is, in full; summary: the same in one plain-language line (tables,
        figures, the demo), starting with what kind of number it is ("a lower bound: ...").
    per_sample: the value is a mean of per-sample terms over held-out samples, which the result carries
        (MIResult.terms) so that two results on the same samples can be paired; False for estimators that
        are not sample means (closed forms, trained critics, plug-in binning, Renyi).
    analysis_params: the keyword arguments an analysis may set (AnalysisParam), all others keep
        the function's defaults.
    x_pairing: what an analysis pairs h with for I(h; x) (X_PAIRINGS).
    preference: rank per quantity ("I(h;x)", "I(h;y)") when figures pick one estimator, lower first;
        a quantity not named: after every ranked estimator.
    """

    name: str
    kind: str
    y_type: str
    fn: Callable[..., MIResult]
    description: str
    summary: str
    per_sample: bool = False
    analysis_params: tuple[AnalysisParam, ...] = ()
    x_pairing: str = "reduced_input"
    preference: Mapping[str, int] = dataclasses.field(default_factory=dict)
