"""The package version (one definition; pyproject.toml repeats it for the installer) and the check
of the format version that files written by the package carry."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def check_format_version(found: Any, readable: int, what: str) -> int:
    """The format version `found` in `what` if this code reads it (1..`readable`); None (written
    before format versions were recorded) reads as 1. A newer version is refused with what to do."""
    if found is None:
        return 1
    if isinstance(found, bool) or not isinstance(found, int) or found < 1:
        raise ValueError(f"{what}: format_version must be a positive int, got {found!r}")
    if found > readable:
        raise ValueError(f"{what} has format_version {found}, but mi_analysis {__version__} reads format "
                         f"versions up to {readable}: upgrade mi_analysis to read it")
    return found
