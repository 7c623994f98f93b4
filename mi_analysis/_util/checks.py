"""Argument checks shared by every layer: one message per kind of mistake, naming the argument."""

from __future__ import annotations

from typing import Any


def positive_int(value: Any, what: str) -> int:
    """`value` if it is an int >= 1 (bool is not an int here), else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value
