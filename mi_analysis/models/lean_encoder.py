"""A memory-lean training forward and backward for the pooled convolutional context encoders.

An encoder here is a chain of (Conv2d, BatchNorm2d, ReLU) stages ending in an
AdaptiveAvgPool2d that makes the output smaller than the last stage's tensors: the E
encoder of a stage-2 or stage-3 cut (two 3x3 convolutions at full image resolution,
pooled to 16x16 or 8x8) and the residual encoders that read an earlier stage's input.
Through plain autograd such an encoder keeps every full-resolution conv, BN and ReLU
output until its backward, and that backward creates as many again: for ResNet-32 E at
K = 16 (batch 128) a stage-3 encoder saves 77.5 MiB and its backward is the peak of
the whole training step.

`lean_encode` gives the same output, gradients and BatchNorm running statistics up to float
rounding (with pooling, the last BatchNorm's batch statistics come from the statistics
kernel of the BatchNorm, torch.batch_norm_update_stats, and the normalisation is done chunk by
chunk, so that no second full-resolution tensor is made; without
pooling the forward is the plain one, bit for bit), never holds more than
one full-resolution tensor of the last stage (its conv output) plus a few chunks of the
batch, and keeps for backward only:
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
Encoders without pooling (an Identity: the source already has the cut's size) take this
path only with `keep_conv_output`: the output is then as large as the conv output, so the
two sums come from a first pass over the kept conv output in backward instead.
Earlier stages (the E encoder's 3 -> 12 channel convolution) are recomputed in backward
from the saved input; their BatchNorm backward is the native one, on the whole batch.
BatchNorm running statistics are updated once, in forward, as nn.BatchNorm2d does
(batch counter, momentum or cumulative average, unbiased running variance). Under autocast
the plain path is used.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

# bytes of one chunk of the last stage's full-resolution tensor in backward: small enough that a
# few such temporaries stay well below the encoder's own full-batch tensors, large enough that
# the convolutions keep their speed
CHUNK_BYTES = 2 * 2**20


def lean_stages(encoder: nn.Module) -> tuple[tuple[tuple[nn.Conv2d, nn.BatchNorm2d], ...], nn.Module] | None:
    """(conv, bn) stages and the pooling of an encoder of the form (Conv2d, BatchNorm2d, ReLU)+
    then AdaptiveAvgPool2d or Identity; None for any other layout (those run through plain autograd)."""
    layers = list(encoder.children()) if isinstance(encoder, nn.Sequential) else []
    if (len(layers) < 4 or (len(layers) - 1) % 3
            or not isinstance(layers[-1], (nn.AdaptiveAvgPool2d, nn.Identity))):
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
    if isinstance(pool, nn.Identity) and not keep_conv_output:
        return None  # the output is as large as the conv output: recomputation (checkpoint) is leaner
    params = [p for conv, bn in stages for p in (conv.weight, conv.bias, bn.weight, bn.bias)]
    if any(p is None for p in params) or not any(p.requires_grad for p in params):
        return None
    return _LeanEncoder.apply(stages, pool, keep_conv_output, source, *params)


def _conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    return conv._conv_forward(x, conv.weight, conv.bias)


def _bn_train(bn: nn.BatchNorm2d, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """BN output, batch mean and inverse std, with the running-statistics update of nn.BatchNorm2d."""
    momentum = _momentum(bn)
    return torch.ops.aten.native_batch_norm(z, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                            True, momentum, bn.eps)


def _momentum(bn: nn.BatchNorm2d) -> float:
    """Counts the batch and returns the running-statistics factor, as nn.BatchNorm2d.forward does."""
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _batch_statistics(bn: nn.BatchNorm2d, z: Tensor) -> tuple[Tensor, Tensor]:
    """Batch mean and inverse std of z per channel without a full-size BN output (the kernel of
    native_batch_norm would make one); running statistics updated as nn.BatchNorm2d does, by
    the statistics kernel of the native BatchNorm (same mean and running statistics; the inverse
    std may differ in the last bit)."""
    mean, var = torch.batch_norm_update_stats(z, bn.running_mean, bn.running_var, _momentum(bn))
    return mean, torch.rsqrt(var + bn.eps)


def _normalise(bn: nn.BatchNorm2d, z: Tensor, mean: Tensor, invstd: Tensor) -> tuple[Tensor, Tensor]:
    """(BN output, xhat) of z from the batch statistics; xhat = (z - mean) * invstd."""
    xhat = (z - mean[:, None, None]).mul_(invstd[:, None, None])
    return torch.addcmul(bn.bias[:, None, None], xhat, bn.weight[:, None, None]), xhat


def _pool_backward(pool: nn.Module, grad: Tensor, like: Tensor) -> Tensor:
    """The gradient at the pooling's input, a new tensor (the caller changes it in place)."""
    if isinstance(pool, nn.Identity):
        return grad.clone(memory_format=torch.contiguous_format)
    return torch.ops.aten._adaptive_avg_pool2d_backward(grad, like)


def _chunks(batch: int, sample_bytes: int) -> list[slice]:
    rows = max(1, CHUNK_BYTES // max(1, sample_bytes))
    return [slice(start, min(start + rows, batch)) for start in range(0, batch, rows)]


def _conv_backward(conv: nn.Conv2d, grad: Tensor, inp: Tensor, need_input: bool):
    return torch.ops.aten.convolution_backward(
        grad, inp, conv.weight, [conv.out_channels], list(conv.stride), list(conv.padding),
        list(conv.dilation), False, [0, 0], 1, [need_input, True, True])


def _pooled_outputs(pool: nn.Module, bn: nn.BatchNorm2d, z: Tensor, mean: Tensor,
                    invstd: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """pool(ReLU(BN(z))), pool(mask) and pool(mask * xhat) (mask: BN output > 0), chunk by chunk;
    the last two give the BN's backward sums, by adjointness of the pooling."""
    outputs = None
    for rows in _chunks(z.shape[0], z[0].numel() * z.element_size()):
        y, xhat = _normalise(bn, z[rows], mean, invstd)
        mask = y > 0
        for i, value in enumerate((y.relu_(), mask.to(z.dtype), xhat.mul_(mask))):
            pooled = pool(value)
            if outputs is None:
                outputs = [pooled.new_empty((z.shape[0], *pooled.shape[1:])) for _ in range(3)]
            outputs[i][rows] = pooled
        del y, xhat, mask, pooled
    return tuple(outputs)


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
                del y
            z = _conv(last_conv, h)
            del h
            if isinstance(pool, nn.Identity):
                # the output is as large as the conv output: the BN kernel's own output is it
                out, mean, invstd = _bn_train(last_bn, z)
                stats += [mean, invstd]
                out, pooled_mask, pooled_xhat = out.relu_(), None, None
            else:
                mean, invstd = _batch_statistics(last_bn, z)
                stats += [mean, invstd]
                out, pooled_mask, pooled_xhat = _pooled_outputs(pool, last_bn, z, mean, invstd)
            if not keep_conv_output:
                del z
                z = None
        ctx.stages, ctx.pool = stages, pool
        ctx.save_for_backward(source, z, pooled_mask, pooled_xhat, *stats)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        source, kept_z, pooled_mask, pooled_xhat, *stats = ctx.saved_tensors
        stages, pool = ctx.stages, ctx.pool
        first_stages, (last_conv, last_bn) = stages[:-1], stages[-1]
        with torch.no_grad():
            # recompute the earlier stages' outputs: the last conv's input
            h = source
            for conv, bn in first_stages:
                h = torch.ops.aten.native_batch_norm(_conv(conv, h), bn.weight, bn.bias, None, None, True, 0.0,
                                                     bn.eps)[0].relu_()
            mean, invstd = stats[-2], stats[-1]
            if pooled_mask is not None:
                grad_beta = (grad_out * pooled_mask).sum((0, 2, 3))
                grad_gamma = (grad_out * pooled_xhat).sum((0, 2, 3))
            else:  # no pooling: a first pass over the kept conv output
                grad_beta, grad_gamma = torch.zeros_like(mean), torch.zeros_like(mean)
                for rows in _chunks(kept_z.shape[0], kept_z[0].numel() * kept_z.element_size()):
                    y, xhat = _normalise(last_bn, kept_z[rows], mean, invstd)
                    grad_y = grad_out[rows] * (y > 0)
                    grad_beta += grad_y.sum((0, 2, 3))
                    grad_gamma += xhat.mul_(grad_y).sum((0, 2, 3))
                    del y, xhat, grad_y
            count = h.shape[0] * _out_size(last_conv, h)  # elements per channel the BN averaged over
            scale = (last_bn.weight * invstd)[:, None, None]
            mean_grad, mean_grad_xhat = (grad_beta / count)[:, None, None], (grad_gamma / count)[:, None, None]
            need_input = len(first_stages) > 0 or ctx.needs_input_grad[3]
            grad_h = torch.empty_like(h) if need_input else None
            grad_w, grad_b = torch.zeros_like(last_conv.weight), torch.zeros_like(last_conv.bias)
            sample_bytes = last_conv.out_channels * _out_size(last_conv, h) * h.element_size()
            for rows in _chunks(h.shape[0], sample_bytes):
                z = kept_z[rows] if kept_z is not None else _conv(last_conv, h[rows])
                y, xhat = _normalise(last_bn, z, mean, invstd)
                del z
                grad_y = _pool_backward(pool, grad_out[rows], y).mul_(y > 0)
                del y
                grad_z = grad_y.sub_(mean_grad).sub_(xhat.mul_(mean_grad_xhat)).mul_(scale)
                del xhat
                grad_in, gw, gb = _conv_backward(last_conv, grad_z, h[rows], need_input)
                grad_w += gw
                grad_b += gb
                if need_input:
                    grad_h[rows] = grad_in
            grads = [grad_w, grad_b, grad_gamma, grad_beta]
            # earlier stages, last to first: ReLU, BN (native backward, whole batch), conv
            for i in reversed(range(len(first_stages))):
                conv, bn = first_stages[i]
                inp = source
                for earlier_conv, earlier_bn in first_stages[:i]:   # the input of stage i
                    inp = torch.ops.aten.native_batch_norm(_conv(earlier_conv, inp), earlier_bn.weight,
                                                           earlier_bn.bias, None, None, True, 0.0,
                                                           earlier_bn.eps)[0].relu_()
                grad_h.masked_fill_(h <= 0, 0)   # ReLU backward; h is this stage's ReLU output
                del h
                z = _conv(conv, inp)
                grad_z, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                    grad_h, z, bn.weight, bn.running_mean, bn.running_var, stats[2 * i],
                    stats[2 * i + 1], True, bn.eps, [True, True, True])
                del z
                need_input = i > 0 or ctx.needs_input_grad[3]
                grad_h, grad_w, grad_b = _conv_backward(conv, grad_z, inp, need_input)
                grads = [grad_w, grad_b, grad_gamma, grad_beta] + grads
                h = inp  # the next (earlier) stage's ReLU output
        grad_source = grad_h if ctx.needs_input_grad[3] else None
        return (None, None, None, grad_source, *grads)



def _out_size(conv: nn.Conv2d, x: Tensor) -> int:
    """Spatial elements of conv(x) per channel and sample."""
    size = 1
    for dim, (k, s, p, d) in enumerate(zip(conv.kernel_size, conv.stride, conv.padding, conv.dilation)):
        size *= (x.shape[2 + dim] + 2 * p - d * (k - 1) - 1) // s + 1
    return size
