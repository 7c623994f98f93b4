"""Context supply (ContSup, Yu et al., arXiv 2312.07636; docs/models.md): context encoders at every cut.

At cut k (k = 0..K-2), the input of module k+1 is

    detach(h_k) + [E_k(x)] + sum_{j=0..n-1, module k-j exists} Res_{k,j}(input of module k-j)

where x is the (normalised) image, "input of module m" is the context-augmented
tensor that entered module m (the image for m = 0), and h_k has shape
(C_k, H_k, W_k). Every tensor fed to an encoder is detached; the sum is not, so
the encoders of cut k are trained by module k+1's loss (the last cut's by the
final cross-entropy), while backbone modules stay gradient-isolated.

- E_k: conv3x3 (in -> 12w, bias) + BN + ReLU + conv3x3 (12w -> C_k, bias) + BN + ReLU
  at full image resolution, then AdaptiveAvgPool2d((H_k, W_k)).
- Res_{k,j}: conv1x1 (C_in -> C_k, bias) + BN + ReLU + AdaptiveAvgPool2d((H_k, W_k)).
- With E present, the image is supplied by E only: no residual encoder of module 0's
  input is built (R1E: the first cut has only E).
- For activations without space (F,) (MLP units), each conv + BN2d becomes Linear + BN1d
  (pooling dropped); a (C, H, W) source feeding such a cut is flattened first.
- For tokens (T, C) (transformer units) the encoders are those of models/token_context.py.

Mode rules: K = 1 (end-to-end) has no cut, so only R0 is valid there. Rn asks for
up to n earlier module inputs; the K-1 cuts can use at most K-1 of them (modules
0..K-2, module 0's being the image), so n <= K is accepted, which keeps every
combination the reference code allows (R2/R4 at K >= 4, R8 at K >= 8, R16 at
K = 16); any look-back beyond module 0 is simply not built, so R_K acts as R_{K-1}.
n > K is an error.
"""
from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .heads import widened
from .lean_encoder import lean_encode
from .token_context import token_image_encoder, token_residual_encoder


@dataclass(frozen=True)
class ContextMode:
    has_E: bool   # encoder of the raw image at every cut
    n_res: int    # residual encoders of the inputs of the last n modules


_MODES = {
    "R0": ContextMode(False, 0),
    "E": ContextMode(True, 0),
    **{f"R{n}{e}": ContextMode(e == "E", n) for n in (1, 2, 4, 8, 16) for e in ("", "E")},
}
CONTEXT_MODES = tuple(_MODES)


def context_mode(name: str, num_modules: int) -> ContextMode:
    """The mode table entry of `name`, checked against K = num_modules."""
    if name not in _MODES:
        raise ValueError(f"context={name!r} is unknown; expected one of {CONTEXT_MODES}")
    mode = _MODES[name]
    if num_modules == 1 and name != "R0":
        raise ValueError(f"context={name!r} needs num_modules >= 2: num_modules=1 is end-to-end "
                         f"training, with no cut to supply context at; use context='R0'")
    if mode.n_res > num_modules:
        valid = tuple(n for n, m in _MODES.items() if m.n_res <= num_modules)
        raise ValueError(f"context={name!r} looks back over {mode.n_res} module inputs but "
                         f"num_modules={num_modules} has at most {num_modules - 1} to give; "
                         f"valid modes for this K: {valid}")
    return mode


def _spatial(shape: Sequence[int]) -> bool:
    if len(shape) not in (1, 3):
        raise ValueError(f"context encoders need (C, H, W) or (F,) tensors per sample (token cuts (T, C) "
                         f"take token encoders, models/token_context.py), got shape {tuple(shape)}")
    return len(shape) == 3


def _flat_input(in_shape: Sequence[int]) -> tuple[list[nn.Module], int]:
    """Layers that turn one sample of in_shape into a vector, and its length."""
    return ([nn.Flatten()] if len(in_shape) > 1 else []), math.prod(in_shape)


def _pool_to(in_shape: Sequence[int], out_shape: Sequence[int]) -> nn.Module:
    """AdaptiveAvgPool2d to the cut's spatial size; an identity where the sizes already agree
    (same output, but its backward would fill and copy a full-resolution gradient for nothing)."""
    if tuple(in_shape[1:]) == tuple(out_shape[1:]):
        return nn.Identity()
    return nn.AdaptiveAvgPool2d(tuple(out_shape[1:]))


def image_encoder(image_shape: Sequence[int], out_shape: Sequence[int], widen: float = 1) -> nn.Sequential:
    """E: the raw input -> a tensor of out_shape."""
    if len(out_shape) == 2:
        return token_image_encoder(image_shape, out_shape)
    hidden = widened(12, widen)
    if _spatial(out_shape):
        if not _spatial(image_shape):
            raise ValueError(f"context E cannot make a (C, H, W) tensor {tuple(out_shape)} from "
                             f"inputs of shape {tuple(image_shape)}")
        return nn.Sequential(
            nn.Conv2d(image_shape[0], hidden, 3, padding=1, bias=True), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, out_shape[0], 3, padding=1, bias=True), nn.BatchNorm2d(out_shape[0]), nn.ReLU(),
            _pool_to(image_shape, out_shape),
        )
    flatten, in_features = _flat_input(image_shape)
    return nn.Sequential(
        *flatten,
        nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, out_shape[0]), nn.BatchNorm1d(out_shape[0]), nn.ReLU(),
    )


def residual_encoder(in_shape: Sequence[int], out_shape: Sequence[int]) -> nn.Sequential:
    """Res: the input of an earlier module -> a tensor of out_shape."""
    if len(out_shape) == 2:
        return token_residual_encoder(in_shape, out_shape)
    if _spatial(out_shape):
        if not _spatial(in_shape):
            raise ValueError(f"context R cannot make a (C, H, W) tensor {tuple(out_shape)} from "
                             f"a module input of shape {tuple(in_shape)}")
        return nn.Sequential(
            nn.Conv2d(in_shape[0], out_shape[0], 1, bias=True), nn.BatchNorm2d(out_shape[0]), nn.ReLU(),
            _pool_to(in_shape, out_shape),
        )
    flatten, in_features = _flat_input(in_shape)
    return nn.Sequential(*flatten, nn.Linear(in_features, out_shape[0]),
                         nn.BatchNorm1d(out_shape[0]), nn.ReLU())


@contextlib.contextmanager
def _batchnorm_stats_kept(module: nn.Module):
    """Undo the running-statistics update of a recomputed forward (it already happened once)."""
    saved = [(buf, buf.clone())
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for buf in (m.running_mean, m.running_var, m.num_batches_tracked) if buf is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def _recompute_contexts(module: nn.Module):
    return contextlib.nullcontext(), _batchnorm_stats_kept(module)


class ContextSupply(nn.Module):
    """All context encoders of a K-module network, with a fixed plan per cut.

    `sources = supply.start(x)` once per batch, then `supply(k, detach(h_k), sources)` at
    each cut k returns the input of module k+1; `sources` keeps only the module inputs
    that a later cut still reads.

    Encoders whose pooling shrinks their full-resolution tensors (E at a cut below full image
    resolution, residual encoders reading an earlier stage) and, without recompute, unpooled conv
    encoders train through lean_encoder's memory-lean backward: same outputs, gradients equal up to float rounding, a fraction of the
    memory. lean_backward=False (the model option lean_context_backward) runs every encoder
    through plain autograd (the reference the tests compare with; faster on some CPUs).
    """

    def __init__(self, mode: str, image_shape: Sequence[int], cut_shapes: Sequence[Sequence[int]], *,
                 widen: float = 1, recompute: bool = False, lean_backward: bool = True):
        super().__init__()
        num_modules = len(cut_shapes) + 1
        self.mode = mode
        self.recompute = recompute
        self.lean_backward = lean_backward
        spec = context_mode(mode, num_modules)
        input_shapes = [tuple(image_shape)] + [tuple(s) for s in cut_shapes]  # input of module m
        self.encoders = nn.ModuleDict()
        plans, last_use = [], {}
        for k, out_shape in enumerate(cut_shapes):
            plan = []  # (encoder key, module whose input it reads)
            if spec.has_E:
                plan.append((f"cut{k}_E", 0))
                self.encoders[f"cut{k}_E"] = image_encoder(image_shape, out_shape, widen)
            for m in range(k, max(k - spec.n_res, -1), -1):
                if m == 0 and spec.has_E:
                    continue
                plan.append((f"cut{k}_m{m}", m))
                self.encoders[f"cut{k}_m{m}"] = residual_encoder(input_shapes[m], out_shape)
            for _, m in plan:
                last_use[m] = k
            plans.append(tuple(plan))
        self._plans = tuple(plans)
        self._kept_inputs = frozenset(last_use)
        self._released_after = tuple(tuple(m for m, last in last_use.items() if last == k)
                                     for k in range(len(cut_shapes)))

    def start(self, x: Tensor) -> dict[int, Tensor]:
        """The module inputs the cuts will read, starting with the image (module 0's input)."""
        return {0: x.detach()} if 0 in self._kept_inputs else {}

    def forward(self, cut: int, h: Tensor, sources: dict[int, Tensor]) -> Tensor:
        """Input of module cut+1 from the detached output h of module `cut`; updates sources."""
        out = h
        for key, m in self._plans[cut]:
            out = out + self._encode(self.encoders[key], sources[m])
        if cut + 1 in self._kept_inputs:
            sources[cut + 1] = out.detach()
        for m in self._released_after[cut]:
            del sources[m]
        return out

    def _encode(self, encoder: nn.Module, source: Tensor) -> Tensor:
        if self.lean_backward:
            out = lean_encode(encoder, source, keep_conv_output=not self.recompute)
            if out is not None:
                return out
        if self.recompute and torch.is_grad_enabled():
            # keep only the encoder's input; its activations are recomputed in backward
            return checkpoint(encoder, source, use_reentrant=False,
                              context_fn=functools.partial(_recompute_contexts, encoder))
        return encoder(source)

    def encoders_at(self, cut: int) -> tuple[nn.Module, ...]:
        """The encoders whose sum is added at `cut`."""
        return tuple(self.encoders[key] for key, _ in self._plans[cut])
