"""torchvision models split into units: every parameter in exactly one unit or the head, the
units' chain gives the (adapted) model's own logits, first layers adapted to the data, and a run
of one step trains and analyses. Heavy families are marked slow; resnet18 and mobilenet_v3_small
run by default."""

from pathlib import Path

import pytest
import torch

from mi_analysis.models import LocalNet, build
from mi_analysis.models.torchvision_units import SMALL_INPUT, UNIT_RULES, torchvision_units

SLOW = pytest.mark.slow
FAMILIES = [
    "resnet18",
    "mobilenet_v3_small",
    pytest.param("resnet50", marks=SLOW),
    pytest.param("vgg11_bn", marks=SLOW),
    pytest.param("efficientnet_b0", marks=SLOW),
    pytest.param("convnext_tiny", marks=SLOW),
    pytest.param("swin_t", marks=SLOW),
    pytest.param("vit_b_16", marks=SLOW),
]
DOCS_TABLE = "### Units and cuts of each family on the digits (1x16x16)"


def documented_units():
    """arch -> (units, K=4 cut labels or None) from the table of docs/models.md."""
    lines = (Path(__file__).resolve().parents[2] / "docs" / "models.md").read_text().splitlines()
    rows = {}
    for line in lines[lines.index(DOCS_TABLE):]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| torchvision:"):
            rows[cells[0]] = (int(cells[1]), None if cells[2].startswith("(") else cells[2].split())
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.parametrize("name", FAMILIES)
def test_units_cover_every_parameter_once_and_give_the_models_logits(name):
    torch.manual_seed(0)
    split = torchvision_units(name, num_classes=10, in_channels=1, image_size=16)
    parts = [*split.units.values(), split.head]
    ids = [id(p) for part in parts for p in part.parameters()]
    assert len(ids) == len(set(ids)), "a parameter sits in two units"
    assert set(ids) == {id(p) for p in split.model.parameters()}, "a parameter of the model is in no unit"
    units, cut_labels = documented_units()[f"torchvision:{name}"]
    assert len(split.units) == units and split.rule == UNIT_RULES[split.family]
    net = LocalNet(split.units, 1, split.head, input_shape=(1, 16, 16), num_classes=10).eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), split.model.eval()(x))
    if cut_labels is not None:  # the documented K=4 cuts (equal units rule)
        assert LocalNet(split.units, 4, split.head, input_shape=(1, 16, 16), num_classes=10,
                        context="E").describe()["cut_labels"] == cut_labels


def test_resnet_units_follow_the_documented_rule_and_adaptations():
    split = torchvision_units("resnet18", num_classes=7, in_channels=1, image_size=16)
    assert list(split.units) == ["stem", *(f"layer{s}.{b}" for s in range(1, 5) for b in range(2))]
    conv1 = split.units["stem"][0]
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride) == (1, (3, 3), (1, 1))
    assert isinstance(split.units["stem"][3], torch.nn.Identity)  # no max pool on small inputs
    assert split.head[-1].out_features == 7
    assert any("3x3 stride 1" in a for a in split.adapted) and any("1 channel" in a for a in split.adapted)


def test_large_three_channel_inputs_keep_torchvisions_stem():
    split = torchvision_units("resnet18", num_classes=10, in_channels=3, image_size=SMALL_INPUT)
    conv1 = split.units["stem"][0]
    assert split.adapted == () and (conv1.kernel_size, conv1.stride) == ((7, 7), (2, 2))
    assert isinstance(split.units["stem"][3], torch.nn.MaxPool2d)


def test_build_cuts_torchvision_units_by_the_rules_and_describes_them():
    net = build("torchvision:mobilenet_v3_small", 3, "E", num_classes=10, in_channels=1, image_size=16)
    d = net.describe()
    assert d["arch"] == "torchvision:mobilenet_v3_small" and d["split_rule"] == "equal units rule"
    assert net.cuts == (4, 8) and d["cut_labels"] == ["features.4", "features.8"]  # 13 units: 5 + 4 + 4
    assert d["unit_rule"].startswith("torchvision mobilenet:") and any("stride 1" in a for a in d["adapted"])
    balanced = build("torchvision:mobilenet_v3_small", 3, split="balanced", in_channels=1, image_size=16)
    assert balanced.describe()["split_rule"] == "balanced activation bytes rule" and balanced.cuts != net.cuts


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match=r"no model 'resnet19'; close matches: torchvision:resnet18"):
        build("torchvision:resnet19", 1)
    with pytest.raises(ValueError, match="alexnet models have no split rule"):
        build("torchvision:alexnet", 1)
    with pytest.raises(ValueError, match=r"num_modules=10 exceeds the 9 units of arch='torchvision:resnet18'"):
        build("torchvision:resnet18", 10, in_channels=1, image_size=16)


def test_vit_refuses_image_sizes_off_its_patch_grid_before_building():
    with pytest.raises(ValueError, match="multiple of its patch size 16; got image_size=28"):
        build("torchvision:vit_b_16", 1, in_channels=1, image_size=28)


@SLOW
def test_vit_is_cut_between_token_units():
    net = build("torchvision:vit_b_16", 2, "E", in_channels=1, image_size=16)  # one patch + the class token
    out = net.training_step(torch.randn(2, 1, 16, 16), torch.arange(2))
    assert out["logits"].shape == (2, 10) and torch.isfinite(out["loss"]).all()
    assert net.tap(net.taps[-1]).shape == (2, 768)
