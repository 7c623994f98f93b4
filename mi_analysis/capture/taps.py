"""Where activations are read: a LocalNet's named points, or module names of any nn.Module."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from torch import Tensor, nn


class UnknownPointError(KeyError, ValueError):
    """A point name the model does not have; catch it as KeyError or ValueError."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class _Point:
    name: str
    module: nn.Module
    where: str  # "output": forward hook; "input": forward pre-hook on the first positional input


def _is_localnet(model: nn.Module) -> bool:
    return hasattr(model, "probe_points") and hasattr(model, "probe_point")


def _point_names(points: str | Iterable[str]) -> list[str]:
    names = [points] if isinstance(points, str) else list(points)
    if not names:
        raise ValueError("points is empty; pass at least one point name")
    if any(not isinstance(name, str) for name in names):
        raise TypeError(f"points must be names (str), got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"points names a point more than once: {duplicates}")
    return names


def _check_known(names: Sequence[str], valid: Sequence[str], model: nn.Module) -> None:
    unknown = [name for name in names if name not in set(valid)]
    if unknown:
        raise UnknownPointError(
            f"unknown point(s) {unknown} for {type(model).__name__}; valid names: {list(valid)}"
        )


def _resolve_points(model: nn.Module, points: str | Iterable[str] | None) -> list[_Point]:
    if _is_localnet(model):
        valid = tuple(model.probe_points)
        names = list(valid) if points is None else _point_names(points)
        _check_known(names, valid, model)
        resolved = [model.probe_point(name) for name in names]
        return [_Point(name, p.target, p.where) for name, p in zip(names, resolved)]
    modules = dict(model.named_modules())
    modules.pop("", None)  # the model itself: its output is what model(x) returns
    if points is None:
        examples = list(modules)[:8]
        raise ValueError(
            f"points is required for a {type(model).__name__} (it has no probe_points); pass names "
            f"from model.named_modules(), e.g. {examples} ({len(modules)} in total)"
        )
    names = _point_names(points)
    _check_known(names, tuple(modules), model)
    return [_Point(name, modules[name], "output") for name in names]


def _first_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, Tensor):
                return item
    raise TypeError(f"point {name!r} produced {type(value).__name__}, which holds no tensor to capture")


