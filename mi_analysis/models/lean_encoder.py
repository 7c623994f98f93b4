"""A memory-lean training forward and backward for the pooled convolutional context encoders.

An encoder here is a chain of (Conv2d, BatchNorm2d, ReLU) stages ending in an
AdaptiveAvgPool2d that makes the output smaller than the last stage's tensors: the E
encoder of a stage-2 or stage-3 cut (two 3x3 convolutions at full image resolution,
pooled to 16x16 or 8x8) and the residual encoders that read an earlier stage's input.
Through plain autograd such an encoder keeps every full-resolution conv, BN and ReLU
output until its backward, and that backward creates as many again: for ResNet-32 E at
K = 16 (batch 128) a stage-3 encoder saves 77.5 MiB and its backward is the peak of
the whole training step.

`lean_encode` gives the same output (the forward runs the same kernels) and the same
gradients up to float rounding, and keeps for backward only:
- the encoder's input (the detached source) and every BatchNorm's batch mean and
  inverse standard deviation, per channel;
- two output-sized tensors of the last stage, pool(mask) and pool(mask * xhat), with
  mask = (BN output > 0) and xhat the normalised conv output. By the adjointness of the
  (linear) pooling, sum(pool_backward(g) * m) = sum(g * pool(m)), they give the two
  per-channel sums that the last BatchNorm's backward needs over the whole batch
  (sum of dL/dy and of dL/dy * xhat) from the output gradient alone, so the backward
  can run over chunks of the batch in one pass;
- the last conv's full-resolution output only when `keep_conv_output` is set (no
  recomputation, more memory); otherwise it is recomputed, chunk by chunk, in backward.
Earlier stages (the E encoder's 3 -> 12 channel convolution) are recomputed in backward
from the saved input; their BatchNorm backward is the native one, on the whole batch.
BatchNorm running statistics are updated once, in forward, exactly as nn.BatchNorm2d
does (same kernel, same momentum rule). Under autocast the plain path is used.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

# bytes of one chunk of the last stage's full-resolution tensor in backward: small enough that a
# few such temporaries stay well below the encoder's own full-batch tensors, large enough that
# the convolutions keep their speed
CHUNK_BYTES = 8 * 2**20


def lean_stages(encoder: nn.Module) -> tuple[tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...],
                                             nn.AdaptiveAvgPool2d] | None:
    """(conv, bn) stages and the pooling of an encoder of the form (Conv2d, BatchNorm2d, ReLU)+
    AdaptiveAvgPool2d; None for any other layout (those run through plain autograd)."""
    layers = list(encoder.children()) if isinstance(encoder, nn.Sequential) else []
    if len(layers) < 4 or (len(layers) - 1) % 3 or not isinstance(layers[-1], nn.AdaptiveAvgPool2d):
        return None
    stages = []
    for i in range(0, len(layers) - 1, 3):
        conv, bn, relu = layers[i:i + 3]
        if not (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and type(relu) is nn.ReLU
                and conv.groups == 1 and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
                and bn.affine and bn.track_running_stats):
            return None
        stages.append((conv, bn))
    return tuple(stages), layers[-1]


def lean_encode(encoder: nn.Module, source: Tensor, *, keep_conv_output: bool) -> Tensor | None:
    """encoder(source) with the memory-lean backward, or None when it does not apply (the
    layout is not a lean one, the encoder is in eval mode, or nothing needs gradients)."""
    layout = lean_stages(encoder)
    if (layout is None or not encoder.training or not torch.is_grad_enabled()
            or torch.is_autocast_enabled(source.device.type)):  # autocast: plain autograd keeps its dtypes
        return None
    stages, pool = layout
    params = [p for conv, bn in stages for p in (conv.weight, conv.bias, bn.weight, bn.bias)]
    if any(p is None for p in params) or not any(p.requires_grad for p in params):
        return None
    return _LeanEncoder.apply(stages, pool, keep_conv_output, source, *params)


def _conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    return conv._conv_forward(x, conv.weight, conv.bias)


def _bn_train(bn: nn.BatchNorm2d, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """BN output, batch mean and inverse std, with the running-statistics update of nn.BatchNorm2d."""
    bn.num_batches_tracked.add_(1)
    momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return torch.ops.aten.native_batch_norm(z, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                            True, momentum, bn.eps)


def _normalise(bn: nn.BatchNorm2d, z: Tensor, mean: Tensor, invstd: Tensor) -> tuple[Tensor, Tensor]:
    """(xhat, mask of a positive BN output) from the saved batch statistics."""
    xhat = (z - mean[:, None, None]) * invstd[:, None, None]
    return xhat, xhat * bn.weight[:, None, None] + bn.bias[:, None, None] > 0


def _pool_backward(pool: nn.AdaptiveAvgPool2d, grad: Tensor, like: Tensor) -> Tensor:
    return torch.ops.aten._adaptive_avg_pool2d_backward(grad, like)


def _chunks(batch: int, sample_bytes: int) -> list[slice]:
    rows = max(1, CHUNK_BYTES // max(1, sample_bytes))
    return [slice(start, min(start + rows, batch)) for start in range(0, batch, rows)]


def _conv_backward(conv: nn.Conv2d, grad: Tensor, inp: Tensor, need_input: bool):
    return torch.ops.aten.convolution_backward(
        grad, inp, conv.weight, [conv.out_channels], list(conv.stride), list(conv.padding),
        list(conv.dilation), False, [0, 0], 1, [need_input, True, True])


class _LeanEncoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, stages, pool, keep_conv_output, source, *params):
        first_stages, (last_conv, last_bn) = stages[:-1], stages[-1]
        stats = []
        with torch.no_grad():
            h = source
            for conv, bn in first_stages:
                y, mean, invstd = _bn_train(bn, _conv(conv, h))
                stats += [mean, invstd]
                h = y.relu_()
            z = _conv(last_conv, h)
            y, mean, invstd = _bn_train(last_bn, z)
            stats += [mean, invstd]
            out = pool(y.relu_())
            del y
            # pool(mask), pool(mask * xhat): the last BN's backward sums, by adjointness of the pooling
            pooled_mask, pooled_xhat = torch.empty_like(out), torch.empty_like(out)
            for rows in _chunks(z.shape[0], z[0].numel() * z.element_size()):
                xhat, mask = _normalise(last_bn, z[rows], mean, invstd)
                pooled_mask[rows] = pool(mask.to(z.dtype))
                pooled_xhat[rows] = pool(xhat.mul_(mask))
        ctx.stages, ctx.pool = stages, pool
        ctx.save_for_backward(source, z if keep_conv_output else None, pooled_mask, pooled_xhat, *stats)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        source, kept_z, pooled_mask, pooled_xhat, *stats = ctx.saved_tensors
        stages, pool = ctx.stages, ctx.pool
        first_stages, (last_conv, last_bn) = stages[:-1], stages[-1]
        grads: list[Tensor | None] = []
        with torch.no_grad():
            # recompute the earlier stages: their conv outputs (for BN backward) and the last conv's input
            inputs, convs_out, h = [], [], source
            for conv, bn in first_stages:
                inputs.append(h)
                convs_out.append(_conv(conv, h))
                h = torch.ops.aten.native_batch_norm(convs_out[-1], bn.weight, bn.bias, None, None, True, 0.0,
                                                     bn.eps)[0].relu_()
            mean, invstd = stats[-2], stats[-1]
            grad_beta = (grad_out * pooled_mask).sum((0, 2, 3))
            grad_gamma = (grad_out * pooled_xhat).sum((0, 2, 3))
            count = h.shape[0] * _out_size(last_conv, h)  # elements per channel the BN averaged over
            scale = (last_bn.weight * invstd)[:, None, None]
            mean_grad, mean_grad_xhat = (grad_beta / count)[:, None, None], (grad_gamma / count)[:, None, None]
            need_input = len(first_stages) > 0 or ctx.needs_input_grad[3]
            grad_h = torch.empty_like(h) if need_input else None
            grad_w, grad_b = torch.zeros_like(last_conv.weight), torch.zeros_like(last_conv.bias)
            sample_bytes = last_conv.out_channels * h[0, 0].numel() * h.element_size()
            for rows in _chunks(h.shape[0], sample_bytes):
                z = kept_z[rows] if kept_z is not None else _conv(last_conv, h[rows])
                xhat, mask = _normalise(last_bn, z, mean, invstd)
                grad_y = _pool_backward(pool, grad_out[rows], z).mul_(mask)
                grad_z = grad_y.sub_(mean_grad).sub_(xhat.mul_(mean_grad_xhat)).mul_(scale)
                grad_in, gw, gb = _conv_backward(last_conv, grad_z, h[rows], need_input)
                grad_w += gw
                grad_b += gb
                if need_input:
                    grad_h[rows] = grad_in
            grads = [grad_w, grad_b, grad_gamma, grad_beta]
            relu_outs = inputs[1:] + [h]  # the ReLU output of stage i is the input of stage i+1
            for i in reversed(range(len(first_stages))):
                conv, bn = first_stages[i]
                grad_y = torch.ops.aten.threshold_backward(grad_h, relu_outs[i], 0)
                grad_z, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                    grad_y, convs_out[i], bn.weight, bn.running_mean, bn.running_var, stats[2 * i],
                    stats[2 * i + 1], True, bn.eps, [True, True, True])
                need_input = i > 0 or ctx.needs_input_grad[3]
                grad_h, grad_w, grad_b = _conv_backward(conv, grad_z, inputs[i], need_input)
                grads = [grad_w, grad_b, grad_gamma, grad_beta] + grads
        grad_source = grad_h if ctx.needs_input_grad[3] else None
        return (None, None, None, grad_source, *grads)



def _out_size(conv: nn.Conv2d, x: Tensor) -> int:
    """Spatial elements of conv(x) per channel and sample."""
    size = 1
    for dim, (k, s, p, d) in enumerate(zip(conv.kernel_size, conv.stride, conv.padding, conv.dilation)):
        size *= (x.shape[2 + dim] + 2 * p - d * (k - 1) - 1) // s + 1
    return size
