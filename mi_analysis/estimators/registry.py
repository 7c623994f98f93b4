"""Name -> estimator registry.

Every estimator family module registers its functions here at import time:

    @register("ksg", kind="estimate", y_type="continuous", description="...")
    def ksg(x, y, *, k=3, seed=0) -> MIResult: ...

Contract for a registered function `fn(x, y, **params) -> MIResult`:
- x: float torch tensor (n, dx), already validated (finite, n >= 2), on the caller's device.
- y: float tensor (n, dy) when y_type is "continuous", int64 labels (n,) when "labels";
  for "any" whichever the caller passed (int/bool 1-D -> labels, otherwise continuous).
- `seed` (int) is passed by `estimate()` whenever the function has a `seed` parameter;
  every other parameter is a keyword the user gave. Unknown keywords are rejected by
  `estimate()` before the call, with the list of accepted ones.
"""

from __future__ import annotations

from typing import Callable

from .interface import KINDS, EstimatorSpec, MIResult

Y_TYPES: tuple[str, ...] = ("continuous", "labels", "any")

_REGISTRY: dict[str, EstimatorSpec] = {}


def register(
    name: str, *, kind: str, y_type: str, description: str
) -> Callable[[Callable[..., MIResult]], Callable[..., MIResult]]:
    """Decorator that records `fn` under `name`; returns `fn` unchanged."""
    if kind not in KINDS:
        raise ValueError(f"register({name!r}): kind must be one of {KINDS}, got {kind!r}")
    if y_type not in Y_TYPES:
        raise ValueError(f"register({name!r}): y_type must be one of {Y_TYPES}, got {y_type!r}")
    if not description.strip():
        raise ValueError(f"register({name!r}): description must say what the number is")

    def decorator(fn: Callable[..., MIResult]) -> Callable[..., MIResult]:
        old = _REGISTRY.get(name)
        # Re-registering the same function (module reload) is fine; two different functions are not.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(
                f"estimator name {name!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}"
            )
        _REGISTRY[name] = EstimatorSpec(name=name, kind=kind, y_type=y_type, fn=fn, description=description)
        return fn

    return decorator


def get(name: str) -> EstimatorSpec:
    """The registry entry for `name`; ValueError listing the valid names when unknown."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown estimator method {name!r}; valid names: {available()}") from None


def available() -> list[str]:
    """Sorted names of all registered estimators."""
    return sorted(_REGISTRY)
