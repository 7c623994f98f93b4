"""Token models (units with (T, C) activations): local heads, context encoders, isolation, the
token reductions of the capture, and I(h;x) of token activations through the estimators."""
from importlib import import_module

import pytest
import torch
from torch import nn

from mi_analysis import AnalysisConfig, analyze_model
from mi_analysis.capture import Tokens, capture, make_reduction
from mi_analysis.models import LocalNet, build
from mi_analysis.models.heads import aux_head
from mi_analysis.models.token_context import PatchContext, token_grid, token_image_encoder, token_residual_encoder


def vit(arch, num_modules, context):
    torch.manual_seed(0)
    return build(arch, num_modules, context, in_channels=1, image_size=16, num_classes=4)


def batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 16, 16, generator=g), torch.arange(n) % 4


# ---------------------------------------------------------------- shapes
def test_the_token_grid_is_read_from_the_token_count():
    assert token_grid(16) == (4, False) and token_grid(17) == (4, True) and token_grid(2) == (1, True)
    with pytest.raises(ValueError, match="7 tokens is not a square grid of patches"):
        token_grid(7)


def test_e_is_a_patch_embedding_with_a_zero_class_token():
    image = torch.randn(3, 2, 8, 8)
    with_class = token_image_encoder((2, 8, 8), (17, 6))
    out = with_class(image)
    assert out.shape == (3, 17, 6) and torch.equal(out[:, 0], torch.zeros(3, 6))
    assert with_class.embed.kernel_size == (2, 2) and with_class.embed.stride == (2, 2)
    # token 1 + i*4 + j is patch (i, j): changing one pixel of patch (1, 2) changes that token only
    changed = image.clone()
    changed[:, :, 2, 5] += 1
    moved = (with_class(changed) - out).abs().sum((0, 2))
    assert moved.nonzero().flatten().tolist() == [1 + 1 * 4 + 2]
    assert token_image_encoder((2, 8, 8), (16, 6))(image).shape == (3, 16, 6)
    with pytest.raises(ValueError, match=r"3x3 patches, but its 8x8 pixels are not a multiple of 3"):
        token_image_encoder((2, 8, 8), (9, 6))
    with pytest.raises(ValueError, match=r"context E cannot make tokens \(16, 6\) from inputs of shape \(64,\)"):
        token_image_encoder((64,), (16, 6))


def test_r_maps_tokens_token_wise_and_needs_the_same_count():
    encoder = token_residual_encoder((17, 5), (17, 6))
    tokens = torch.randn(3, 17, 5)
    out = encoder(tokens)
    assert out.shape == (3, 17, 6)
    assert torch.allclose(encoder(tokens[:, :4])[:, 2], out[:, 2])  # each token on its own
    assert isinstance(token_residual_encoder((1, 8, 8), (17, 6)), PatchContext)  # module 0's input: the image
    with pytest.raises(ValueError, match=r"context R cannot make tokens \(17, 6\) from a module input of shape "
                                         r"\(9, 5\); token-wise maps need tokens with the same count T=17"):
        token_residual_encoder((9, 5), (17, 6))


def test_token_heads_average_the_tokens_after_token_wise_layers():
    head = aux_head("0c1f", (5, 3), 4)
    tokens = torch.randn(2, 5, 3)
    linear = head[-1]
    assert torch.allclose(head(tokens), linear(tokens.mean(1)))
    head = aux_head("1c2f", (5, 32), 4, feature_dim=16)
    token_wise = head[0]
    assert (token_wise.in_features, token_wise.out_features) == (32, 64)  # C < 64: C' = 2C, as on images
    assert head(torch.randn(2, 5, 32)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(C, H, W\), \(T, C\) or \(F,\) activations per sample"):
        aux_head("0c1f", (2, 3, 4, 5), 4)


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("num_modules, context", [(3, "E"), (3, "R2"), (3, "R1E"), (5, "R2E")])
def test_a_vit_is_cut_with_token_heads_and_context(tiny_vit, num_modules, context):
    net = vit(tiny_vit, num_modules, context)
    x, y = batch()
    out = net.training_step(x, y)
    assert out["logits"].shape == (8, 4) and torch.isfinite(out["loss"]).all()
    for k in range(num_modules - 1):
        for encoder in net.context.encoders_at(k):
            assert encoder(x if isinstance(encoder, PatchContext) else torch.randn(8, 17, 32)).shape == (8, 17, 32)
    assert {net.tap(name).shape for name in net.taps} == {(17, 32)}
    assert all(net.tap(name).tokens for name in net.taps)


@pytest.mark.parametrize("context", ["R0", "E", "R1", "R2E"])
def test_token_modules_are_gradient_isolated(tiny_vit, context):
    net = vit(tiny_vit, 4, context)
    x, y = batch()
    params = dict(net.named_parameters())
    for k in range(1, 4):
        net.zero_grad(set_to_none=True)
        for j, h in net._walk(x):
            if j == k:
                net.module_loss(k, h, y)[0].backward()
                break
        earlier = [n for n in params if any(n.startswith(p) for p in (
            *(f"units.{i}." for i, m in enumerate(net.module_of_unit) if m < k),
            *(f"aux_heads.{j}." for j in range(k)), *(f"context.encoders.cut{j}_" for j in range(k - 1))))]
        own = [n for n in params if any(n.startswith(p) for p in (
            *(f"units.{i}." for i, m in enumerate(net.module_of_unit) if m == k), f"context.encoders.cut{k - 1}_"))]
        assert earlier and all(params[n].grad is None for n in earlier), (k, context)
        own_grads = [params[n].grad for n in own if params[n].grad is not None]
        assert own_grads and any(g.abs().sum() > 0 for g in own_grads), (k, context)


def test_a_cut_whose_tokens_are_no_patch_grid_cannot_take_e(tiny_vit):
    units, head = import_module("tiny_vit").tiny_vit(num_classes=4, in_channels=1, image_size=12)  # 9 + 1 tokens
    units["block0"] = nn.Sequential(units["block0"], DropFirstToken(), DropFirstToken())  # 8 tokens
    with pytest.raises(ValueError, match="a cut with 8 tokens is not a square grid of patches"):
        LocalNet.from_units(units, [1], head, input_shape=(1, 12, 12), num_classes=4, context="E")
    LocalNet.from_units(units, [1], head, input_shape=(1, 12, 12), num_classes=4, context="R0")  # no context: fine


class DropFirstToken(nn.Module):
    def forward(self, tokens):
        return tokens[:, 1:]


# ---------------------------------------------------------------- capture and I(h;x)
def test_token_reductions_keep_what_they_say():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    assert torch.equal(make_reduction(("tokens", "mean")).transform(x), x.mean(1))
    assert torch.equal(make_reduction(("tokens", "cls")).transform(x), x[:, 0])
    assert torch.equal(make_reduction(("tokens", "flatten")).transform(x), x.flatten(1))
    pooled = make_reduction(("tokens", "pool", 2)).transform(x)
    assert torch.equal(pooled, torch.cat([x[:, :2].mean(1), x[:, 2:].mean(1)], 1))
    assert torch.equal(make_reduction(("tokens", "pool", 9)).transform(x), x.flatten(1))  # never upsamples
    assert Tokens("pool", 2).describe((4, 3)) == "tokens 4x3 reduced to 2 token averages (tokens=pool)"
    with pytest.raises(ValueError, match="tokens reduction must be one of"):
        Tokens("max")
    with pytest.raises(ValueError, match="tokens size is given with mode 'pool' only"):
        Tokens("mean", 3)


def test_capture_reduces_a_vits_tokens(tiny_vit):
    net = vit(tiny_vit, 3, "E").eval()
    x, _ = batch()
    acts = capture(net, x, ["block0", "m1.in"], ("tokens", "cls"))
    with torch.no_grad():
        expected = net.units[0](x)
        expected = net.units[1](expected)
    assert torch.allclose(acts["block0"], expected[:, 0], atol=1e-6)
    assert acts["m1.in"].shape == (8, 32)


def pixels_as_tokens(*, num_classes, in_channels, image_size):
    """Tokens = the pixels (one token per pixel, T = H*W, C = channels), then a token-wise map."""
    return [PixelTokens(), nn.Linear(in_channels, 4)], nn.Sequential(MeanOverTokens(), nn.Linear(4, num_classes))


class PixelTokens(nn.Module):
    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class MeanOverTokens(nn.Module):
    def forward(self, tokens):
        return tokens.mean(1)


@pytest.mark.parametrize("estimator", ["reconstruction", "kde_upper"])
def test_ihx_of_tokens_sees_the_information_a_reduction_keeps(estimator):
    """Tokens holding every pixel: flattened, they carry far more about x than their mean does (the
    linear decoder recovers x exactly from them: mean squared error 0)."""
    torch.manual_seed(0)
    units, head = pixels_as_tokens(num_classes=2, in_channels=1, image_size=4)
    net = LocalNet.from_units(units, [0], head, input_shape=(1, 4, 4), num_classes=2).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(240, 1, 4, 4, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    values = {}
    for tokens in ("flatten", "mean"):
        config = AnalysisConfig(quantities=("I(h;x)",), x_estimators=(estimator,), held_out_size=120, tokens=tokens,
                                pca_dim=16, device="cpu")
        rows = analyze_model(net, x, ["m1.in"], labels=y, config=config)
        assert all(f"tokens={tokens}" in r["notes"] for r in rows) and rows
        values[tokens] = {r["estimator"]: r["value"] for r in rows}
    for name, flat in values["flatten"].items():
        if name == "reconstruction_mse":  # an error in pixel units, not information
            assert flat < 1e-6 < 0.01 < values["mean"][name], values
        else:
            assert flat > values["mean"][name] + 0.5, (name, values)


def test_flops_of_transformer_blocks_are_counted(tiny_vit):
    """The fused inference path of nn.TransformerEncoderLayer is invisible to the FLOP counter."""
    from mi_analysis.profiling.costs import forward_flops_per_image

    net = vit(tiny_vit, 1, "R0")
    dim, tokens, hidden = 32, 17, 64
    # at least, per block, the q, k, v projections and the two feed-forward Linears (the fused path
    # read 49,792 for the whole net)
    block = 2 * tokens * (3 * dim * dim + 2 * dim * hidden)
    assert forward_flops_per_image(net, (1, 16, 16)) >= 4 * block
    assert torch.backends.mha.get_fastpath_enabled()  # restored
