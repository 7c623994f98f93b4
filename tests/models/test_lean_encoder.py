"""The memory-lean encoder backward against plain autograd on the same encoder."""
import copy

import pytest
import torch
from torch import nn

from mi_analysis.models import build
from mi_analysis.models import context, lean_encoder
from mi_analysis.models.context import image_encoder, residual_encoder
from mi_analysis.models.lean_encoder import lean_encode, lean_stages
from mi_analysis.profiling.memory import LiveTensorMeter, SavedTensorMeter


def _encoders():
    torch.manual_seed(0)
    e = image_encoder((3, 16, 16), (8, 4, 4))             # E of a cut at 4x4: two stages
    r = residual_encoder((6, 16, 16), (8, 8, 8))           # residual encoder across a stage: one stage
    odd = image_encoder((3, 15, 15), (5, 4, 4))            # overlapping adaptive pooling windows
    same = image_encoder((3, 8, 8), (6, 8, 8))             # no pooling (identity)
    for enc in (e, r, odd, same):  # non-trivial BN affine parameters and running statistics
        for m in enc.modules():
            if isinstance(m, nn.BatchNorm2d):
                nn.init.uniform_(m.weight, 0.5, 1.5)
                nn.init.uniform_(m.bias, -0.5, 0.5)
    return [(e, (3, 16, 16)), (r, (6, 16, 16)), (odd, (3, 15, 15)), (same, (3, 8, 8))]


def _assert_same_state(module, reference):
    """Running means and variances equal up to float rounding, batch counters exactly."""
    for name, value in reference.state_dict().items():
        rtol = 0 if name.endswith("num_batches_tracked") else 1e-5
        torch.testing.assert_close(module.state_dict()[name], value, rtol=rtol, atol=1e-7, msg=name)


def _step(encoder, x, grad_out, lean, keep):
    out = lean_encode(encoder, x, keep_conv_output=keep) if lean else encoder(x)
    assert out is not None
    out.backward(grad_out)
    return out.detach(), {n: p.grad for n, p in encoder.named_parameters()}, x.grad


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("chunk_bytes", [lean_encoder.CHUNK_BYTES, 1000])   # one chunk, many chunks
def test_same_output_and_statistics_and_gradients_within_rounding(monkeypatch, keep, chunk_bytes):
    monkeypatch.setattr(lean_encoder, "CHUNK_BYTES", chunk_bytes)
    for encoder, shape in _encoders():
        if lean_encode(copy.deepcopy(encoder), torch.randn(2, *shape), keep_conv_output=keep) is None:
            assert not keep and isinstance(encoder[-1], nn.Identity)   # recomputation is leaner there
            continue
        plain = copy.deepcopy(encoder)
        x = torch.randn(9, *shape)
        x_lean, x_plain = x.clone().requires_grad_(), x.clone().requires_grad_()
        grad_out = torch.randn_like(plain(x.clone()))
        plain.load_state_dict(encoder.state_dict())   # undo that call's running-statistics update
        for _ in range(2):  # the second step starts from updated running statistics
            out_l, grads_l, gx_l = _step(encoder, x_lean, grad_out, True, keep)
            out_p, grads_p, gx_p = _step(plain, x_plain, grad_out, False, keep)
        torch.testing.assert_close(out_l, out_p, rtol=0, atol=1e-5 * out_p.abs().max())
        _assert_same_state(encoder, plain)
        scale = max(g.abs().max() for g in grads_p.values())
        for name in grads_p:
            torch.testing.assert_close(grads_l[name], grads_p[name], rtol=0, atol=1e-5 * scale, msg=name)
        torch.testing.assert_close(gx_l, gx_p, rtol=0, atol=1e-5 * gx_p.abs().max())


def test_cumulative_momentum_is_followed():
    encoder, shape = _encoders()[1]
    for m in encoder.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    plain = copy.deepcopy(encoder)
    for _ in range(3):
        x = torch.randn(4, *shape)
        lean_encode(encoder, x, keep_conv_output=False).sum().backward()
        plain(x).sum().backward()
    _assert_same_state(encoder, plain)


def test_only_shrinking_conv_encoders_take_the_lean_path():
    assert lean_stages(image_encoder((3, 16, 16), (8, 4, 4))) is not None
    assert lean_stages(image_encoder((12,), (8,))) is None                  # MLP encoder
    assert lean_stages(nn.Sequential(*residual_encoder((4, 8, 8), (8, 4, 4))[:3])) is None  # no pooling layer
    encoder = image_encoder((3, 8, 8), (4, 2, 2))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert lean_encode(encoder, x, keep_conv_output=False) is None
    assert lean_encode(encoder.eval(), x, keep_conv_output=False) is None


@pytest.mark.parametrize("recompute", [False, True])
def test_network_step_matches_plain_autograd(recompute):
    torch.manual_seed(0)
    lean = build("resnet20", 4, "R2E", image_size=16, recompute_context=recompute)
    plain = build("resnet20", 4, "R2E", image_size=16, recompute_context=recompute, lean_context_backward=False)
    plain.load_state_dict(lean.state_dict())
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    out_l, out_p = lean.training_step(x, y), plain.training_step(x, y)
    torch.testing.assert_close(out_l["loss"], out_p["loss"], rtol=1e-5, atol=0)
    grads_p = {n: p.grad for n, p in plain.named_parameters()}
    scale = max(g.abs().max() for g in grads_p.values())
    for name, p in lean.named_parameters():
        torch.testing.assert_close(p.grad, grads_p[name], rtol=0, atol=1e-5 * scale, msg=name)
    _assert_same_state(lean, plain)


@pytest.mark.parametrize("lean_option", [True, False])
def test_the_model_option_decides_whether_encoders_take_the_lean_path(monkeypatch, lean_option):
    """Every encoder of a training step is offered to lean_encode, unless the net was built with
    lean_context_backward=False: then all of them run through plain autograd."""
    calls = []

    def counted(encoder, source, keep_conv_output):
        calls.append(encoder)
        return lean_encode(encoder, source, keep_conv_output=keep_conv_output)

    monkeypatch.setattr(context, "lean_encode", counted)
    net = build("resnet20", 4, "R2E", image_size=16, lean_context_backward=lean_option)
    net.training_step(torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,)))
    assert len(calls) == (len(net.context.encoders) if lean_option else 0)


def _peaks(encoder, x, lean, keep):
    params = list(encoder.parameters()) + list(encoder.buffers())
    with SavedTensorMeter(exclude=params) as saved, LiveTensorMeter() as live:
        out = lean_encode(encoder, x, keep_conv_output=keep) if lean else encoder(x)
        out.sum().backward()
    return saved.peak_bytes, live.peak_bytes


def test_lean_backward_lowers_both_peaks(monkeypatch):
    monkeypatch.setattr(lean_encoder, "CHUNK_BYTES", 64 * 16 * 16 * 4 * 4)   # 4 samples per chunk
    torch.manual_seed(0)
    encoder = image_encoder((3, 16, 16), (64, 4, 4))
    x = torch.randn(32, 3, 16, 16)
    full = 32 * 64 * 16 * 16 * 4   # bytes of one full-resolution 64-channel tensor
    plain_saved, plain_live = _peaks(copy.deepcopy(encoder), x, False, True)
    kept_saved, kept_live = _peaks(copy.deepcopy(encoder), x, True, True)
    lean_saved, lean_live = _peaks(copy.deepcopy(encoder), x, True, False)
    print(plain_saved / full, plain_live / full, kept_saved / full, kept_live / full, lean_saved / full, lean_live / full)
    assert plain_saved >= 2 * full and plain_live >= 4 * full
    assert full <= kept_saved < 1.2 * full           # the last conv output, plus small tensors
    assert lean_saved < 0.2 * full                   # input, statistics, output-sized sums
    assert kept_live < 0.6 * plain_live and lean_live < 0.6 * plain_live
