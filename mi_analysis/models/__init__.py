"""Models: CIFAR ResNets cut into K modules, local heads, context supply.

    net = build("resnet32", 16, "R1E")     # ResNet-32, K=16 modules, context R1E
    net = build_model(ModelConfig(arch="resnet32", num_modules=16, context="R1E"),
                      num_classes=10, in_channels=3, image_size=32)   # the same net
    net.training_step(x, y)                 # local losses back-propagated per module
    logits = net(x)

`LocalNet.from_units` applies the same machinery to any list of units.
"""
from __future__ import annotations

import warnings

from .builder import build, build_model
from .config import E2E, ModelConfig, run_mode
from .context import CONTEXT_MODES
from .heads import AUX_HEADS
from .local import LocalNet
from .losses import LOCAL_LOSSES
from .resnet import available_archs
from .splits import SPLITS
from .taps import Tap

__all__ = ["build", "build_model", "ModelConfig", "run_mode", "E2E", "LocalNet", "Tap", "available_archs",
           "CONTEXT_MODES", "AUX_HEADS", "LOCAL_LOSSES", "SPLITS"]


def __getattr__(name: str):
    if name == "ProbePoint":  # the name of Tap before the vocabulary was settled
        warnings.warn("mi_analysis.models.ProbePoint is deprecated; use mi_analysis.models.Tap", DeprecationWarning,
                      stacklevel=2)
        return Tap
    raise AttributeError(f"module 'mi_analysis.models' has no attribute {name!r}")
