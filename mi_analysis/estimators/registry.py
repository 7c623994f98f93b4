"""Name -> estimator registry.

Every estimator family module registers its functions here at import time:

    @register("ksg", kind="estimate", y_type="continuous", description="...", summary="an estimate: ...",
              per_sample=True, analysis_params=(KNN_K,))
    def ksg(x, y, *, k=3, seed=0) -> MIResult: ...

The entry also says what a per-layer analysis needs (EstimatorSpec): which keywords it may set
and how they scale with the data, what h is paired with for I(h; x), a one-line summary, and the
estimator's rank when figures pick one per quantity. Analysis reads these; it names no method.

Contract for a registered function `fn(x, y, **params) -> MIResult`:
- x: float torch tensor (n, dx), already validated (finite, n >= 2), on the caller's device.
- y: float tensor (n, dy) when y_type is "continuous", int64 labels (n,) when "labels";
  for "any" whichever the caller passed (int/bool 1-D -> labels, otherwise continuous).
- `seed` (int) is passed by `estimate()` whenever the function has a `seed` parameter;
  every other parameter is a keyword the user gave. Unknown keywords are rejected by
  `estimate()` before the call, with the list of accepted ones.
"""

from __future__ import annotations

import inspect
from typing import Callable, Mapping

from .interface import KINDS, X_PAIRINGS, AnalysisParam, EstimatorSpec, MIResult

Y_TYPES: tuple[str, ...] = ("continuous", "labels", "any")

_REGISTRY: dict[str, EstimatorSpec] = {}


def register(
    name: str,
    *,
    kind: str,
    y_type: str,
    description: str,
    summary: str | None = None,
    per_sample: bool = False,
    analysis_params: tuple[AnalysisParam, ...] = (),
    x_pairing: str = "reduced_input",
    preference: Mapping[str, int] | None = None,
) -> Callable[[Callable[..., MIResult]], Callable[..., MIResult]]:
    """Decorator that records `fn` under `name` (EstimatorSpec documents the fields; summary
    defaults to the description); returns `fn` unchanged."""
    if kind not in KINDS:
        raise ValueError(f"register({name!r}): kind must be one of {KINDS}, got {kind!r}")
    if y_type not in Y_TYPES:
        raise ValueError(f"register({name!r}): y_type must be one of {Y_TYPES}, got {y_type!r}")
    if not description.strip():
        raise ValueError(f"register({name!r}): description must say what the number is")
    if x_pairing not in X_PAIRINGS:
        raise ValueError(f"register({name!r}): x_pairing must be one of {X_PAIRINGS}, got {x_pairing!r}")
    preference = dict(preference or {})
    if not all(isinstance(rank, int) and not isinstance(rank, bool) for rank in preference.values()):
        raise ValueError(f"register({name!r}): preference must map quantities to int ranks, got {preference!r}")
    analysis_params = tuple(analysis_params)
    for param in analysis_params:
        _check_shared(name, param)

    def decorator(fn: Callable[..., MIResult]) -> Callable[..., MIResult]:
        old = _REGISTRY.get(name)
        # Re-registering the same function (module reload) is fine; two different functions are not.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"estimator name {name!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}"
            )
        accepted = list(inspect.signature(fn).parameters)[2:]
        unknown = [p.keyword for p in analysis_params if p.keyword not in accepted]
        if unknown:
            raise ValueError(f"register({name!r}): analysis_params name keyword(s) {unknown} that fn does not take")
        _REGISTRY[name] = EstimatorSpec(
            name=name, kind=kind, y_type=y_type, fn=fn, description=description, summary=summary or description,
            per_sample=per_sample, analysis_params=analysis_params, x_pairing=x_pairing, preference=preference,
        )  # fmt: skip
        return fn

    return decorator


def _check_shared(name: str, param: AnalysisParam) -> None:
    """One analysis setting, one definition: estimators sharing a setting declare the same AnalysisParam."""
    for spec in _REGISTRY.values():
        for other in spec.analysis_params:
            if other.setting == param.setting and other != param and spec.name != name:
                raise ValueError(
                    f"register({name!r}): analysis setting {param.setting} is already declared differently by "
                    f"{spec.name!r} ({other}); share that AnalysisParam"
                )


def analysis_settings() -> dict[str, dict[str, AnalysisParam]]:
    """{group: {name: AnalysisParam}} of every analysis setting the registered estimators declare."""
    settings: dict[str, dict[str, AnalysisParam]] = {}
    for spec in _REGISTRY.values():
        for param in spec.analysis_params:
            settings.setdefault(param.group, {})[param.name] = param
    return settings


def get(name: str) -> EstimatorSpec:
    """The registry entry for `name`; ValueError listing the valid names when unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown estimator method {name!r}; valid names: {available()}") from None


def available() -> list[str]:
    """Sorted names of all registered estimators."""
    return sorted(_REGISTRY)
