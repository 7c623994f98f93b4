"""LocalNet: training step, gradient isolation, context gradients, counts, probes, from_units."""
import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from mi_analysis.models import LocalNet, build



def batch(n=8, size=16, seed=0):
    """Images and labels 0..3 repeated, so every contrast anchor has positives."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % 4


def small(k, context="R0", **kw):
    torch.manual_seed(0)
    return build("resnet20", k, context, image_size=16, **kw)


# ---------------------------------------------------------------- parameters in use
@pytest.mark.parametrize("k, context, kw", [
    (1, "R0", {}),
    (4, "R0", {}),
    (4, "E", {}),
    (4, "R1", {"local_loss": "contrast"}),
    (4, "R1E", {"reconstruct": True, "lambdas": (1, 1, 1, 1)}),
    (5, "R2E", {"aux_head": "2c2f"}),
])
def test_every_parameter_is_counted_and_gets_a_gradient(k, context, kw):
    net = small(k, context, **kw)
    counts = net.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in net.parameters())
    assert counts["total"] == counts["backbone"] + counts["local_heads"] + counts["context"] + counts["decoders"]
    x, y = batch()
    out = net.training_step(x, y)
    assert out["loss"].shape == (k,) and out["accuracy"].shape == (k,) and out["logits"].shape == (8, 10)
    assert out["loss"].dtype == torch.float32 and not out["loss"].requires_grad
    assert torch.isfinite(out["loss"]).all()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_last_module_has_no_aux_head_and_decoders_only_with_reconstruct():
    net = small(4)
    assert len(net.aux_heads) == 3 and len(net.decoders) == 0
    assert small(1).parameter_counts() == {"backbone": 272_474, "local_heads": 0, "context": 0,
                                           "decoders": 0, "total": 272_474}


def test_contrast_heads_report_nan_accuracy_and_final_accuracy_is_real():
    out = small(3, local_loss="contrast").training_step(*batch())
    assert torch.isnan(out["accuracy"][:2]).all()
    assert 0 <= out["accuracy"][2] <= 1
    assert out["accuracy"][2] == (out["logits"].argmax(1) == batch()[1]).float().mean()


# ---------------------------------------------------------------- gradient isolation
def module_parameter_names(net, k):
    """Parameters trained by module k's loss: its units, its head/decoder, the encoders feeding it."""
    names = {f"units.{i}." for i, m in enumerate(net.module_of_unit) if m == k}
    names |= {f"aux_heads.{k}.", f"decoders.{k}."}
    names |= {f"context.encoders.cut{k - 1}_"} if k > 0 else set()
    return [n for n, _ in net.named_parameters() if any(n.startswith(p) for p in names)]


def later_parameter_names(net, k):
    own = set(module_parameter_names(net, k))
    earlier = {n for j in range(k) for n in module_parameter_names(net, j)}
    return [n for n, _ in net.named_parameters() if n not in own and n not in earlier]


def grads_of(net, names, x, y):
    net.zero_grad(set_to_none=True)
    net.training_step(x, y)
    params = dict(net.named_parameters())
    return [params[n].grad.clone() for n in names]


def perturb(net, names, seed=1):
    g = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    with torch.no_grad():
        for n in names:
            params[n].add_(torch.randn(params[n].shape, generator=g))


@pytest.mark.parametrize("context", ["R0", "E", "R1", "R1E", "R2"])
def test_modules_are_gradient_isolated(context):
    net = small(4, context)
    x, y = batch()
    for k in range(3):
        own = module_parameter_names(net, k)
        before = grads_of(net, own, x, y)
        perturb(net, later_parameter_names(net, k), seed=k + 1)
        after = grads_of(net, own, x, y)
        for name, a, b in zip(own, before, after):
            assert torch.equal(a, b), (k, name)


def test_end_to_end_gradients_do_depend_on_later_layers():
    net = small(1)
    x, y = batch()
    stem = [n for n, _ in net.named_parameters() if n.startswith("units.0.")]
    before = grads_of(net, stem, x, y)
    perturb(net, [n for n, _ in net.named_parameters() if n.startswith("units.9.")])
    after = grads_of(net, stem, x, y)
    assert not all(torch.equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("context", ["E", "R1", "R1E"])
def test_context_encoders_learn_from_the_next_modules_loss(context):
    net = small(4, context)
    x, y = batch()
    for k in range(3):  # encoders of cut k feed module k+1
        encoders = [n for n, _ in net.named_parameters() if n.startswith(f"context.encoders.cut{k}_")]
        next_loss = [n for n, _ in net.named_parameters()
                     if n.startswith(f"aux_heads.{k + 1}.") or (k == 2 and n.startswith("classifier."))]
        before = grads_of(net, encoders, x, y)
        assert all(g.abs().sum() > 0 for g in before)
        if k < 2:  # the loss after next must not reach them
            perturb(net, [n for n, _ in net.named_parameters()
                          if n.startswith(f"aux_heads.{k + 2}.") or n.startswith("classifier.")])
            assert all(torch.equal(a, b) for a, b in zip(before, grads_of(net, encoders, x, y)))
        perturb(net, next_loss, seed=5)
        after = grads_of(net, encoders, x, y)
        assert not all(torch.equal(a, b) for a, b in zip(before, after)), k


# ---------------------------------------------------------------- forward
@pytest.mark.parametrize("context", ["R0", "R1E", "R2E"])
def test_forward_equals_the_final_logits_of_training_step(context):
    net = small(4, context)
    x, y = batch()
    net.training_step(x, y)          # move BN running statistics away from their init
    net.eval()
    with torch.no_grad():
        logits = net(x)
    torch.testing.assert_close(net.training_step(x, y)["logits"], logits, rtol=0, atol=0)


def test_forward_matches_a_manual_computation_with_context():
    net = small(2, "R1").eval()
    x, _ = batch()
    (cut,) = net.cuts
    with torch.no_grad():
        h = x
        for unit in net.units[:cut + 1]:
            h = unit(h)
        (encoder,) = net.context.encoders_at(0)
        h = h + encoder(x)               # R1 at the first cut: residual encoder of the image
        for unit in net.units[cut + 1:]:
            h = unit(h)
        torch.testing.assert_close(net(x), net.classifier(h), rtol=0, atol=0)


def test_r2_reads_the_context_augmented_inputs_of_the_last_two_modules():
    net = small(3, "R2").eval()
    x, _ = batch()
    enc = net.context.encoders
    with torch.no_grad():
        inputs = [x]
        h = x
        for k, unit_range in enumerate([range(0, 4), range(4, 7), range(7, 10)]):
            for i in unit_range:
                h = net.units[i](h)
            if k == 0:
                h = h + enc["cut0_m0"](inputs[0])
            elif k == 1:   # input of module 1 (augmented) and of module 0 (the image)
                h = h + enc["cut1_m1"](inputs[1]) + enc["cut1_m0"](inputs[0])
            inputs.append(h)
        assert net.cuts == (3, 6)
        torch.testing.assert_close(net(x), net.classifier(h), rtol=0, atol=0)


def test_context_is_active_in_eval_mode():
    net = small(3, "E").eval()
    x, _ = batch()
    with torch.no_grad():
        before = net(x)
        for p in net.context.parameters():
            p.add_(0.5)
        assert not torch.equal(before, net(x))


def test_autocast_bfloat16_training_step():
    net = small(3, "R1E", local_loss="contrast")
    out = net.training_step(*batch(), autocast_dtype=torch.bfloat16)
    assert out["loss"].dtype == out["logits"].dtype == torch.float32
    assert torch.isfinite(out["loss"]).all()
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())


def test_decoder_target_undoes_the_normalisation():
    net = small(2, reconstruct=True, input_mean=(0.5, 0.4, 0.3), input_std=0.25)
    image = torch.rand(2, 3, 16, 16)
    x = (image - torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1)) / 0.25
    torch.testing.assert_close(net._reconstruction_target(x), image)
    with pytest.raises(ValueError, match=r"input_std must be a number or 3 per-channel numbers > 0"):
        small(2, reconstruct=True, input_std=(1, 0, 1))


# ---------------------------------------------------------------- probes and description
def test_taps_order_and_targets():
    net = small(4)
    assert net.cuts == (2, 5, 7)
    assert net.taps == ("stem", "s1.b0", "s1.b1", "m1.in", "s1.b2", "s2.b0", "s2.b1",
                                "m2.in", "s2.b2", "s3.b0", "m3.in", "s3.b1", "s3.b2")
    point = net.tap("m2.in")
    assert (point.depth, point.module, point.unit, point.where) == (7, 2, 6, "input")
    assert point.target is net.units[6]
    point = net.tap("s2.b0")
    assert (point.depth, point.module, point.unit, point.where, point.target) == (5, 1, 4, "output", net.units[4])
    assert net.module_of_unit == (0, 0, 0, 1, 1, 1, 2, 2, 3, 3)
    with pytest.raises(KeyError, match=r"tap 'nope' is unknown; valid names: \('stem'"):
        net.tap("nope")


def test_earlier_names_of_taps_still_work_and_warn():
    net = small(4)
    with pytest.warns(DeprecationWarning, match="use LocalNet.taps"):
        assert net.probe_points == net.taps
    with pytest.warns(DeprecationWarning, match="use LocalNet.tap"):
        assert net.probe_point("m2.in") is net.tap("m2.in")
    import mi_analysis.models as models

    with pytest.warns(DeprecationWarning, match="use mi_analysis.models.Tap"):
        assert models.ProbePoint is models.Tap


def test_input_probe_sees_the_context_augmented_tensor():
    net = small(2, "R1").eval()
    x, _ = batch()
    seen = {}
    handle = net.tap("m1.in").target.register_forward_pre_hook(lambda m, a: seen.update(x=a[0]))
    with torch.no_grad():
        net(x)
        h = x
        for unit in net.units[:net.cuts[0] + 1]:
            h = unit(h)
    handle.remove()
    torch.testing.assert_close(seen["x"], h + net.context.encoders_at(0)[0](x))


def test_describe_is_json_and_config_rebuilds():
    net = build("resnet32", 8, "R1E", local_loss="contrast", reconstruct=True, image_size=8)
    description = json.loads(json.dumps(net.describe()))
    assert description["cut_labels"] == ["(1,0)", "(1,2)", "(1,4)", "(2,1)", "(2,3)", "(3,0)", "(3,2)"]
    assert description["cuts"] == [1, 3, 5, 7, 9, 11, 13]
    assert description["unit_names"][0] == ["stem", "s1.b0"]
    assert description["parameter_counts"] == net.parameter_counts()
    assert description["lambdas"][0] == [5, 0] and description["lambdas"][-1] == [0, 2]
    rebuilt = build(**net.config)
    assert rebuilt.describe() == net.describe()
    assert net.state_dict().keys() == rebuilt.state_dict().keys()


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "resnet18"}, r"arch='resnet18' is unknown; expected one of \('resnet20', 'resnet32'"),
    ({"aux_head": "1c9f"}, r"aux_head='1c9f' is unknown; expected one of \('0c1f'"),
    ({"local_loss": "mse"}, r"local_loss='mse' is unknown; expected one of \('cross_entropy', 'contrast'\)"),
    ({"image_size": 30}, r"image_size must be divisible by 4"),
    ({"image_size": 4}, r"image_size must be an int >= 8"),
    ({"in_channels": 0}, r"in_channels must be an int >= 1"),
    ({"num_classes": 1}, r"num_classes must be an int >= 2"),
    ({"aux_widen": 0}, r"aux_widen must be a positive number"),
    ({"aux_feature_dim": 0}, r"aux_feature_dim must be an int >= 1"),
])
def test_build_rejects_bad_arguments(kwargs, message):
    arguments = {"arch": "resnet20", "num_modules": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        build(**arguments)


def test_build_rejects_non_bool_flags():
    with pytest.raises(TypeError, match=r"reconstruct must be True or False, got 'yes'"):
        build("resnet20", 2, reconstruct="yes")


# ---------------------------------------------------------------- user architectures
def user_cnn():
    return OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        conv2=nn.Sequential(nn.Conv2d(8, 24, 3, stride=2, padding=1), nn.ReLU()),
        conv3=nn.Sequential(nn.Conv2d(24, 24, 3, padding=1), nn.ReLU()),
        conv4=nn.Sequential(nn.Conv2d(24, 40, 3, stride=2, padding=1), nn.ReLU()),
    )


def test_from_units_on_a_user_cnn():
    torch.manual_seed(0)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 5))
    net = LocalNet.from_units(user_cnn(), [0, 2], head, input_shape=(1, 12, 12), num_classes=5,
                              context="R1E")
    assert net.unit_names == ("conv1", "conv2", "conv3", "conv4")
    assert net.taps == ("conv1", "m1.in", "conv2", "conv3", "m2.in", "conv4")
    # 1c2f on 24 channels (cut 1): conv 24 -> 48 stride 2
    conv = net.aux_heads[1][0]
    assert (conv.in_channels, conv.out_channels, conv.stride) == (24, 48, (2, 2))
    assert net.context.encoders["cut1_E"](torch.randn(2, 1, 12, 12)).shape == (2, 24, 6, 6)
    x, y = torch.randn(6, 1, 12, 12), torch.arange(6) % 5
    out = net.training_step(x, y)
    assert out["loss"].shape == (3,)
    assert all(p.grad is not None for p in net.parameters())
    assert net.describe()["split_rule"] == "user cuts" and net.describe()["cut_labels"] == ["conv1", "conv3"]
    assert net.config["cuts"] == [0, 2] and net.config["arch"] is None
    assert net(x).shape == (6, 5)


def test_from_units_with_a_split_rule():
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(40, 5))
    net = LocalNet.from_units(user_cnn(), 2, head, input_shape=(1, 12, 12), num_classes=5, split="balanced")
    # outputs per sample: 8*144=1152, 24*36=864, 864, 40*9=360: modules of 2016 and 1224
    # (a cut after unit 0 would leave 1152 and 2088)
    assert net.cuts == (1,) and net.describe()["split_rule"] == "balanced activation bytes rule"


def mlp_units():
    return [nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU()),
            nn.Sequential(nn.Linear(32, 32), nn.ReLU()),
            nn.Sequential(nn.Linear(32, 16), nn.ReLU())]


def test_from_units_on_an_mlp():
    torch.manual_seed(0)
    net = LocalNet.from_units(mlp_units(), [0, 1], nn.Linear(16, 3), input_shape=(1, 8, 8),
                              num_classes=3, context="R1E", aux_head="0c2f")
    assert net.unit_names == ("u0", "u1", "u2")
    assert sorted(net.context.encoders) == ["cut0_E", "cut1_E", "cut1_m1"]
    # E: flatten, Linear 64->12 + BN1d, Linear 12->32 + BN1d; Res: Linear 32->32 + BN1d
    assert net.parameter_counts()["context"] == 2 * (64 * 12 + 12 + 24 + 12 * 32 + 32 + 64) + (32 * 32 + 32 + 64)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6) % 3
    net.training_step(x, y)
    assert all(p.grad is not None for p in net.parameters())
    vector_net = LocalNet.from_units(mlp_units()[1:], [0], nn.Linear(16, 3), input_shape=(32,),
                                     num_classes=3, context="R1", aux_head="0c1f")
    assert vector_net(torch.randn(4, 32)).shape == (4, 3)


def test_from_units_errors():
    head = nn.Linear(16, 3)
    with pytest.raises(ValueError, match=r"aux_head='1c2f' has conv layers"):
        LocalNet.from_units(mlp_units(), [0], head, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match=r"reconstruct=True needs image inputs"):
        LocalNet.from_units(mlp_units(), [0], head, input_shape=(1, 8, 8), num_classes=3,
                            aux_head="0c1f", reconstruct=True)
    with pytest.raises(ValueError, match=r"cuts must be strictly increasing unit indices in 0..1"):
        LocalNet.from_units(mlp_units(), [1, 0], head, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match=r"cuts must be strictly increasing unit indices in 0..1"):
        LocalNet.from_units(mlp_units(), [2], head, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match=r"head must map the last unit's output to .* \(1, 4\) logits"):
        LocalNet.from_units(mlp_units(), [0], head, input_shape=(1, 8, 8), num_classes=4)
    with pytest.raises(ValueError, match=r"num_modules=4 exceeds the number of units \(3\)"):
        LocalNet.from_units(mlp_units(), 4, head, input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(TypeError, match=r"unit 'u1' must be an nn.Module"):
        LocalNet.from_units([nn.Flatten(), "relu"], [0], head, input_shape=(16,), num_classes=3)
    with pytest.raises(ValueError, match=r"unit name 'm1.in' must be a str other than"):
        LocalNet.from_units({"a": nn.Flatten(), "m1.in": nn.Linear(64, 16)}, [0], head,
                            input_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(ValueError, match=r"input_shape must be one sample's shape"):
        LocalNet.from_units(mlp_units(), [0], head, input_shape=(0, 8), num_classes=3)
