"""CIFAR ResNets (He et al. 2016, section 4.2) as a flat list of units (docs/models.md).

A network of depth 6n+2 is: a stem (3x3 conv -> BN -> ReLU, 16 channels), three
stages of n BasicBlocks (widths 16, 32, 64; the first block of stages 2 and 3
halves the resolution and uses a 1x1 conv + BN projection shortcut, "option B"),
then a classifier (global average pool, Linear(64 -> classes)).

The units are returned in forward order with names "stem", "s1.b0", ...,
"s3.b{n-1}", so that greedy local learning can cut the network between any two.
"""
from __future__ import annotations

import math
from collections import OrderedDict

from torch import Tensor, nn

STAGE_WIDTHS = (16, 32, 64)

# arch name -> BasicBlocks per stage (depth = 6n + 2)
_BLOCKS_PER_STAGE = {"resnet20": 3, "resnet32": 5, "resnet56": 9, "resnet110": 18}


def available_archs() -> tuple[str, ...]:
    """Names accepted by `build(arch, ...)`."""
    return tuple(_BLOCKS_PER_STAGE)


def blocks_per_stage(arch: str) -> int:
    if arch not in _BLOCKS_PER_STAGE:
        raise ValueError(f"arch={arch!r} is unknown; expected one of {available_archs()}")
    return _BLOCKS_PER_STAGE[arch]


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def init_conv_bn_(module: nn.Module) -> None:
    """The papers' init: conv weight ~ N(0, 2 / (k*k*out_channels)), BN weight 1 and bias 0.

    Conv biases and Linear layers keep PyTorch's default init, as in the reference code.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet_units(arch: str, *, in_channels: int = 3,
                 num_classes: int = 10) -> tuple[OrderedDict[str, nn.Module], nn.Module]:
    """(units name -> module in forward order, classifier) of a CIFAR ResNet, initialised."""
    n = blocks_per_stage(arch)
    units: OrderedDict[str, nn.Module] = OrderedDict()
    units["stem"] = nn.Sequential(
        nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(STAGE_WIDTHS[0]),
        nn.ReLU(),
    )
    width = STAGE_WIDTHS[0]
    for stage, stage_width in enumerate(STAGE_WIDTHS, start=1):
        for block in range(n):
            stride = 2 if stage > 1 and block == 0 else 1
            units[f"s{stage}.b{block}"] = BasicBlock(width, stage_width, stride)
            width = stage_width
    classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))
    for unit in units.values():
        init_conv_bn_(unit)
    return units, classifier
