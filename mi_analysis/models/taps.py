"""Taps: the places where an activation is read (by capture hooks) along a network.

A LocalNet declares its taps (`LocalNet.taps`): every unit output, and the context-augmented
input "m{k}.in" of every module k >= 1. For any other nn.Module, capture makes one tap per
requested `named_modules()` name. Both are this one type, so capture and analysis never
re-describe a tap.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Tap:
    """Where an activation is read, and where that place sits in the network.

    where="output": forward hook on `target`, its output is the activation.
    where="input": forward pre-hook on `target`, its first positional argument is the activation.
    depth: position along the network (a LocalNet's tap order; for other models, request order).
    module: index of the local module the tap belongs to (0 for models that are not cut).
    unit: flat unit index (the module's first unit for "m{k}.in"); None outside a LocalNet.
    shape: per-sample shape of the activation ((C, H, W), (T, C) tokens or (F,)) where the model
        declares it (a LocalNet), else None.
    """

    name: str
    depth: int
    module: int
    unit: int | None
    where: str
    target: nn.Module
    shape: tuple[int, ...] | None = None

    @property
    def tokens(self) -> bool:
        """Whether the activation is known to be tokens (T, C)."""
        return self.shape is not None and len(self.shape) == 2
