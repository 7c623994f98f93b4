"""The protocol every mutual-information estimator follows.

This file imports nothing from the rest of the package, so that estimators,
the registry and the tests can all depend on it without cycles.

Units: every value is in nats.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal

Kind = Literal["estimate", "lower_bound", "upper_bound", "proxy", "non_shannon"]
KINDS: tuple[str, ...] = ("estimate", "lower_bound", "upper_bound", "proxy", "non_shannon")

# What y an estimator accepts: continuous (n, dy) floats, integer class labels (n,), or both.
YType = Literal["continuous", "labels", "any"]


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
            params={**self.params, "units": "bits"},
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """Registry entry: what an estimator is and how to call it.

    fn(x, y, **params) -> MIResult, where x is a float64/float32 torch tensor (n, dx) and y is
    either a float tensor (n, dy) or an int64 label tensor (n,), already validated.
    """

    name: str
    kind: str
    y_type: str
    fn: Callable[..., MIResult]
    description: str
