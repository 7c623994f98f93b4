"""Architectures from a user's factory ("package.module:factory"): imported, called with the data
settings, cut like any units; a factory's own LocalNet is taken as it is; clear errors otherwise."""

import textwrap

import pytest
import torch

from mi_analysis.models import ModelConfig, build
from mi_analysis.models.external import recorded_config

FACTORIES = textwrap.dedent('''
    from collections import OrderedDict

    from torch import nn

    from mi_analysis.models import LocalNet

    CALLS = []


    def block(c_in, c_out, stride=1):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU())


    def small_cnn(*, num_classes, in_channels, image_size):
        CALLS.append((num_classes, in_channels, image_size))
        units = OrderedDict(conv1=block(in_channels, 8), conv2=block(8, 16, 2), conv3=block(16, 16))
        return units, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


    def as_list(*, num_classes, in_channels, image_size):
        units, head = small_cnn(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        return list(units.values()), head


    def ready_net(*, num_classes, in_channels, image_size):
        units, head = small_cnn(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        return LocalNet.from_units(units, [0, 1], head, input_shape=(in_channels, image_size, image_size),
                                   num_classes=num_classes, context="E", aux_head="0c1f")


    def fixed_size_net(*, num_classes, in_channels, image_size):
        return ready_net(num_classes=num_classes, in_channels=in_channels, image_size=8)  # ignores image_size


    def pools_by_8(*, num_classes, in_channels, image_size):
        units = [nn.Sequential(nn.Conv2d(in_channels, 4, 8, stride=8), nn.ReLU())]
        return units, nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


    class Tokens(nn.Module):
        """(B, C, H, W) -> (B, H * W, C): one token per pixel."""

        def forward(self, x):
            return x.flatten(2).transpose(1, 2)


    class MeanToken(nn.Module):
        def forward(self, x):
            return x.mean(1)


    def token_model(*, num_classes, in_channels, image_size):
        units = [Tokens(), nn.Linear(in_channels, 8), nn.Sequential(nn.GELU(), nn.Linear(8, 8))]
        return units, nn.Sequential(MeanToken(), nn.Linear(8, num_classes))


    def wrong(*, num_classes, in_channels, image_size):
        return nn.Linear(3, 4)


    def no_keywords(num_classes):
        return small_cnn(num_classes=num_classes, in_channels=1, image_size=8)


    not_a_function = 3
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_archs.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_archs

    yield user_archs
    monkeypatch.delitem(__import__("sys").modules, "user_archs")


def test_factory_is_called_with_the_data_settings_and_cut_by_the_rules(user_module):
    net = build("user_archs:small_cnn", 2, "E", num_classes=7, in_channels=1, image_size=12)
    assert user_module.CALLS == [(7, 1, 12)]
    d = net.describe()
    assert d["arch"] == "user_archs:small_cnn" and net.unit_names == ("conv1", "conv2", "conv3")
    assert net.cuts == (1,) and d["cut_labels"] == ["conv2"] and d["unit_rule"] == "the factory's units"
    out = net.training_step(torch.randn(4, 1, 12, 12), torch.arange(4))
    assert out["logits"].shape == (4, 7)
    assert build("user_archs:as_list", 3, num_classes=7, in_channels=1, image_size=12).unit_names == ("u0", "u1", "u2")


def test_a_factorys_localnet_is_taken_as_it_is_and_conflicting_options_are_refused(user_module):
    net = build("user_archs:ready_net", 1, num_classes=10, in_channels=1, image_size=8)
    assert (net.num_modules, net.mode, net.arch) == (3, "E", "user_archs:ready_net")
    assert build("user_archs:ready_net", 3, "E", in_channels=1, image_size=8).num_modules == 3  # the same: fine
    with pytest.raises(ValueError, match=r"fixes its own num_modules=3; num_modules \(-K\)=2 conflicts"):
        build("user_archs:ready_net", 2, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match=r"fixes its own context='E'; context \(--context\)='R1' conflicts"):
        build("user_archs:ready_net", 1, "R1", in_channels=1, image_size=8)
    with pytest.raises(ValueError, match=r"returns a LocalNet for 10 classes and inputs \(1, 8, 8\); the data set "
                                         r"has 10 classes and inputs \(1, 12, 12\)"):
        build("user_archs:fixed_size_net", 1, in_channels=1, image_size=12)
    recorded = recorded_config(ModelConfig(arch="user_archs:ready_net"), num_classes=10, in_channels=1, image_size=8)
    assert (recorded.num_modules, recorded.context, recorded.aux_head) == (3, "E", "0c1f")
    plain = ModelConfig(arch="user_archs:small_cnn", num_modules=2)
    assert recorded_config(plain, num_classes=10, in_channels=1, image_size=8) == plain


def test_factory_errors_say_what_is_wrong(user_module):
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_module' \(ModuleNotFoundError"):
        build("no_such_module:f", 1)
    with pytest.raises(ValueError, match="module 'user_archs' has no function 'missing'"):
        build("user_archs:missing", 1)
    with pytest.raises(ValueError, match="module 'user_archs' has no function 'not_a_function'"):
        build("user_archs:not_a_function", 1)
    with pytest.raises(ValueError, match=r"must take the keyword arguments num_classes, in_channels and image_size"):
        build("user_archs:no_keywords", 1)
    with pytest.raises(ValueError, match=r"must return \(units, head\).* or a LocalNet, got Linear"):
        build("user_archs:wrong", 1)
    with pytest.raises(ValueError, match=r"num_modules=4 exceeds the 3 units of arch='user_archs:small_cnn'"):
        build("user_archs:small_cnn", 4, in_channels=1, image_size=12)
    with pytest.raises(ValueError, match=r"arch='user_archs:pools_by_8' cannot take 1x4x4 inputs"):
        build("user_archs:pools_by_8", 1, in_channels=1, image_size=4)


def test_token_units_are_cut_like_any_units(user_module):
    x, y = torch.randn(4, 1, 4, 4), torch.arange(4)
    net = build("user_archs:token_model", 1, in_channels=1, image_size=4)
    assert net.training_step(x, y)["logits"].shape == (4, 10)
    for num_modules, context in ((2, "R0"), (2, "E"), (3, "R2E")):
        net = build("user_archs:token_model", num_modules, context, in_channels=1, image_size=4)
        assert net.training_step(x, y)["logits"].shape == (4, 10)
        assert net.tap(net.taps[-1]).shape == (16, 8)


@pytest.mark.parametrize("arch", ["resnet33", "torchvision", "a b:c", "pkg.mod:", "pkg/mod:f", 3])
def test_model_config_refuses_malformed_arch_strings(arch):
    with pytest.raises(ValueError, match=r"arch"):
        ModelConfig(arch=arch)


def test_model_config_accepts_the_three_kinds_without_importing_a_factory():
    for arch in ("resnet32", "torchvision:resnet18", "not_installed.anywhere:factory"):
        assert ModelConfig(arch=arch).arch == arch
