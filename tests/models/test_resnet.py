"""CIFAR ResNet backbones: exact parameter counts, unit layout, shapes, init."""
import math

import pytest
import torch
from torch import nn

from mi_analysis.models import available_archs, build
from mi_analysis.models.resnet import BasicBlock, resnet_units


def count(*modules):
    return sum(p.numel() for m in modules for p in m.parameters())


@pytest.mark.parametrize("arch, expected", [
    ("resnet20", 272_474), ("resnet32", 466_906), ("resnet56", 855_770), ("resnet110", 1_730_714),
])
def test_backbone_parameter_counts(arch, expected):
    units, classifier = resnet_units(arch, in_channels=3, num_classes=10)
    assert count(*units.values(), classifier) == expected


def test_reference_counts_through_build():
    assert build("resnet32", 1).parameter_counts()["backbone"] == 466_906
    assert build("resnet110", 1).parameter_counts()["total"] == 1_730_714


def test_registry_lists_every_arch_and_rejects_unknown():
    assert available_archs() == ("resnet20", "resnet32", "resnet56", "resnet110")
    with pytest.raises(ValueError, match=r"arch='resnet18' is unknown; expected one of .*resnet32"):
        resnet_units("resnet18")


def test_units_are_named_in_forward_order_with_option_b_shortcuts():
    units, _ = resnet_units("resnet20")
    assert list(units) == ["stem"] + [f"s{s}.b{b}" for s in (1, 2, 3) for b in range(3)]
    for name, unit in units.items():
        if name in ("s2.b0", "s3.b0"):  # stride-2 blocks: 1x1 conv (no bias) + BN projection
            conv, bn = unit.shortcut
            assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.bias is None
            assert isinstance(bn, nn.BatchNorm2d)
        elif isinstance(unit, BasicBlock):
            assert isinstance(unit.shortcut, nn.Identity)


def test_unit_output_shapes_and_logits():
    units, classifier = resnet_units("resnet20", in_channels=1, num_classes=7)
    h = torch.randn(2, 1, 16, 16)
    shapes = []
    for unit in units.values():
        h = unit(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(16, 16, 16)] * 4 + [(32, 8, 8)] * 3 + [(64, 4, 4)] * 3
    assert classifier(h).shape == (2, 7)


def test_conv_init_follows_the_papers():
    torch.manual_seed(0)
    units, _ = resnet_units("resnet56")
    weights = torch.cat([m.weight.flatten() for u in units.values() for m in u.modules()
                         if isinstance(m, nn.Conv2d) and m.out_channels == 64 and m.kernel_size == (3, 3)])
    assert weights.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.02)
    assert weights.mean().item() == pytest.approx(0.0, abs=2e-3)
    bns = [m for u in units.values() for m in u.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)
