"""Argument checks shared by every layer: one message per kind of mistake, naming the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence


def is_number(value: Any) -> bool:
    """A real number (numpy scalars included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_iterable(value: Any) -> bool:
    """Something to iterate over other than a str or bytes (a list, tuple, array, tensor...)."""
    try:
        iter(value)
    except TypeError:
        return False
    return not isinstance(value, (str, bytes))


def positive_int(value: Any, what: str) -> int:
    """`value` if it is an int >= 1 (bool is not an int here), else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


def int_at_least(value: Any, what: str, minimum: int) -> int:
    """`value` as an int if it is an integer (numpy included, bool not) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


def positive_number(value: Any, what: str) -> Any:
    """`value` if it is a finite number > 0."""
    if not is_number(value) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return value


def finite_at_least(value: Any, what: str, minimum: float) -> Any:
    """`value` if it is a finite number >= `minimum`."""
    if not is_number(value) or not math.isfinite(value) or value < minimum:
        raise ValueError(f"{what} must be a finite number >= {minimum}, got {value!r}")
    return value


def boolean(value: Any, what: str) -> bool:
    """`value` if it is True or False (1, "yes" and the like are refused: TypeError)."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return value


def one_of(value: Any, what: str, valid: Sequence[str]) -> Any:
    """`value` if it is one of `valid`."""
    if value not in valid:
        raise ValueError(f"{what}={value!r} is unknown; expected one of {tuple(valid)}")
    return value


def seed_list(value: Any, what: str) -> tuple[int, ...]:
    """A non-empty sequence of distinct integers >= 0 (an int alone is one seed), as a tuple."""
    seeds = (value,) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    if not is_iterable(seeds):
        raise ValueError(f"{what} must be a seed or a sequence of seeds (integers >= 0), got {value!r}")
    seeds = tuple(int_at_least(s, what, 0) for s in seeds)
    if not seeds:
        raise ValueError(f"{what} must name at least one seed, got {value!r}")
    if len(set(seeds)) != len(seeds):
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        raise ValueError(f"{what} must not repeat a seed (runs would collide), got {list(seeds)}: "
                         f"{', '.join(map(str, repeated))} repeated")
    return seeds
