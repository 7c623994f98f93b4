"""Models: CIFAR ResNets cut into K modules, local heads, context supply.

    net = build("resnet32", 16, "R1E")     # ResNet-32, K=16 modules, context R1E
    net = build_model(ModelConfig(arch="resnet32", num_modules=16, context="R1E"),
                      num_classes=10, in_channels=3, image_size=32)   # the same net
    net.training_step(x, y)                 # local losses back-propagated per module
    logits = net(x)

`LocalNet.from_units` applies the same machinery to any list of units.
"""
from __future__ import annotations

from .builder import build, build_model
from .config import E2E, ModelConfig, run_mode
from .context import CONTEXT_MODES
from .heads import AUX_HEADS
from .local import LocalNet, ProbePoint
from .losses import LOCAL_LOSSES
from .resnet import available_archs
from .splits import SPLITS

__all__ = ["build", "build_model", "ModelConfig", "run_mode", "E2E", "LocalNet", "ProbePoint", "available_archs",
           "CONTEXT_MODES", "AUX_HEADS", "LOCAL_LOSSES", "SPLITS"]
