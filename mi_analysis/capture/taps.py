"""Which taps a capture reads: a LocalNet's declared taps, or module names of any nn.Module."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from mi_analysis.models.taps import Tap


class UnknownPointError(KeyError, ValueError):
    """A point name the model does not have; catch it as KeyError or ValueError."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def _declared_taps(model: nn.Module) -> tuple[tuple[str, ...], Callable[[str], Tap]] | None:
    """(names, name -> Tap) of a model that declares its taps (a LocalNet), else None. A model
    written against the earlier protocol (`probe_points`, `probe_point`) still works, with a warning."""
    if hasattr(model, "taps") and hasattr(model, "tap"):
        return tuple(model.taps), model.tap
    if hasattr(model, "probe_points") and hasattr(model, "probe_point"):
        warnings.warn(f"{type(model).__name__} declares probe_points/probe_point; name them taps/tap",
                      DeprecationWarning, stacklevel=3)
        return tuple(model.probe_points), model.probe_point
    return None


def tap_names(points: str | Iterable[str]) -> list[str]:
    """The requested tap names as a list: one name or several, none twice."""
    names = [points] if isinstance(points, str) else list(points)
    if not names:
        raise ValueError("points is empty; pass at least one tap name")
    if any(not isinstance(name, str) for name in names):
        raise TypeError(f"points must be tap names (str), got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"points names a tap more than once: {duplicates}")
    return names


def check_known(names: Sequence[str], valid: Sequence[str], model: nn.Module) -> None:
    unknown = [name for name in names if name not in set(valid)]
    if unknown:
        raise UnknownPointError(
            f"unknown point(s) {unknown} for {type(model).__name__}; valid names: {list(valid)}"
        )


def declared_tap_names(model: nn.Module) -> tuple[str, ...] | None:
    """The names of the taps a model declares (a LocalNet), or None for any other nn.Module."""
    declared = _declared_taps(model)
    return None if declared is None else declared[0]


def resolve_taps(model: nn.Module, points: str | Iterable[str] | None) -> list[Tap]:
    """Taps for the requested names, in the order asked (None: every declared tap of a LocalNet).
    A LocalNet's names are its taps; any other module's are `named_modules()` names, read at the
    module's output, with depth = position in the request."""
    declared = _declared_taps(model)
    if declared is not None:
        valid, tap = declared
        names = list(valid) if points is None else tap_names(points)
        check_known(names, valid, model)
        return [tap(name) for name in names]
    modules = dict(model.named_modules())
    modules.pop("", None)  # the model itself: its output is what model(x) returns
    if points is None:
        examples = list(modules)[:8]
        raise ValueError(
            f"points is required for a {type(model).__name__} (it declares no taps); pass names "
            f"from model.named_modules(), e.g. {examples} ({len(modules)} in total)"
        )
    names = tap_names(points)
    check_known(names, tuple(modules), model)
    return [Tap(name, depth, 0, None, "output", modules[name]) for depth, name in enumerate(names)]


def _first_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    raise TypeError(f"point {name!r} produced {type(value).__name__}, which holds no tensor to capture")


