"""Local-learning rules: how the auxiliary network of each local module is built (docs/models.md).

- "gll": the head of heads.aux_head on the module's output (InfoPro arXiv 2101.10832, ContSup
  arXiv 2312.07636), as in plain greedy local learning.
- "auglocal": AugLocal (Ma et al., "Scaling Supervised Local Learning with Augmented Auxiliary
  Networks", ICLR 2024). The auxiliary network of the module ending at unit c is built from a
  uniformly spaced subset of the units after it, followed by the network's classifier: fresh
  copies (own, re-initialised parameters) of units round(c + i * (L - c) / d_c), i = 1..d_c, where
  L is the last unit (so L is always among them; every later unit when d_c >= L - c), and a copy
  of the classifier. Depth schedule (the paper's pyramid: heads get shallower as the module goes
  deeper): for local module i = 0..K-2, d_i = max(1, round(d (1 - i p / (K - 2)) + i p / (K - 2))),
  capped at the L - c units left, with d = AUGLOCAL_DEPTH and p = AUGLOCAL_PYRAMID (the authors'
  ResNet-32 setting, d = 2 and p = 0.5): the first head has d units, the last d (1 - p) + p.
  Where a copied unit expects another shape than the one before it (a skipped stage transition)
  an adapter sits between them: adaptive average pooling to its spatial size and a 1x1 conv + BN
  for (C, H, W), a Linear for (F,).
- "man": momentum auxiliary network (MAN, Su et al., "Momentum Auxiliary Network for Supervised
  Local Learning", ECCV 2024, arXiv 2407.05623), as in the authors' public code (JunhaoSu0/MAN).
  The auxiliary network of the module ending at unit c reads the next unit, c + 1 (the first unit
  of the next module), twice: an EMA copy of it, not trained by any loss (theta_ema <- m *
  theta_ema + (1 - m) * theta_{c+1} once per training step, m = MAN_MOMENTUM), plus a trainable
  copy of it with its own parameters (the paper's learnable bias, LB); their outputs are summed and
  go into an aux_head built for unit c + 1's output shape.

Every auxiliary network's trainable parameters belong to it alone: a module's loss reaches its
own units, head and context encoders and nothing of other modules (tests/test_rules.py).
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Sequence

import torch
from torch import Tensor, nn

from . import heads

LOCAL_RULES = ("gll", "auglocal", "man")
AUGLOCAL_DEPTH = 2  # units in the first module's AugLocal head (d; the authors' ResNet-32 setting)
AUGLOCAL_PYRAMID = 0.5  # pyramid coefficient p: the last local head has d (1 - p) + p units
MAN_MOMENTUM = 0.995  # EMA momentum m of the momentum auxiliary network (the authors' published commands)


def auglocal_depths(cuts: Sequence[int], last: int, depth: int = AUGLOCAL_DEPTH,
                    pyramid: float = AUGLOCAL_PYRAMID) -> tuple[int, ...]:
    """d_i per cut (unit index after which local module i ends; last: the last unit's index): the
    pyramid schedule, falling linearly from `depth` to depth (1 - pyramid) + pyramid over the local
    modules, rounded (Python's round, as the authors' code), at least 1, at most the units left."""
    steps = max(len(cuts) - 1, 1)  # K - 2: the first and the last local module are that far apart
    return tuple(min(last - c, max(1, round(depth * (1 - i * pyramid / steps) + i * pyramid / steps)))
                 for i, c in enumerate(cuts))


def auglocal_units(cut: int, last: int, depth: int) -> tuple[int, ...]:
    """The units copied into the AugLocal head of the module ending at unit `cut`: round(cut + i *
    (last - cut) / depth) for i = 1..depth (uniform spacing, the last unit always included); every
    later unit when depth >= last - cut."""
    if depth >= last - cut:
        return tuple(range(cut + 1, last + 1))
    return tuple(round(cut + (last - cut) / depth * i) for i in range(1, depth + 1))


def own_copy(module: nn.Module) -> nn.Module:
    """A copy of module with parameters of its own; LocalNet re-initialises every head as a part of its
    own (models/init.py init_parts_), so the copy does not keep the original's weights."""
    return copy.deepcopy(module)


def _adapter(have: Sequence[int], need: Sequence[int]) -> nn.Module:
    if len(have) == 3 and len(need) == 3:
        return nn.Sequential(nn.AdaptiveAvgPool2d(tuple(need[1:])),
                             nn.Conv2d(have[0], need[0], 1, bias=False), nn.BatchNorm2d(need[0]))
    if len(have) == 1 and len(need) == 1:
        return nn.Linear(have[0], need[0])
    raise ValueError(f"local_rule='auglocal' cannot connect a unit output of shape {tuple(have)} to a unit "
                     f"taking {tuple(need)}; it needs (C, H, W) or (F,) activations")


def auglocal_head(units: Sequence[nn.Module], shapes: Sequence[Sequence[int]], classifier: nn.Module,
                  cut: int, depth: int) -> nn.Sequential:
    """AugLocal head of the module ending at unit `cut`; shapes[i]: unit i's output shape."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    have = tuple(shapes[cut])
    for i in auglocal_units(cut, len(units) - 1, depth):
        need = tuple(shapes[i - 1])
        if have != need:
            layers[f"adapt{i}"] = _adapter(have, need)
        layers[f"unit{i}"] = own_copy(units[i])
        have = tuple(shapes[i])
    layers["classifier"] = own_copy(classifier)
    return nn.Sequential(layers)


class MomentumHead(nn.Module):
    """MAN head: (EMA copy of the next unit (frozen) + trainable copy of it)(h) -> head."""

    def __init__(self, next_unit: nn.Module, head: nn.Module):
        super().__init__()
        self.ema = copy.deepcopy(next_unit).requires_grad_(False)
        self.learned = own_copy(next_unit)  # the learnable bias (LB)
        self.head = head

    def forward(self, h: Tensor) -> Tensor:
        return self.head(self.ema(h) + self.learned(h))

    @torch.no_grad()
    def follow(self, next_unit: nn.Module, momentum: float = MAN_MOMENTUM) -> None:
        """theta_ema <- momentum * theta_ema + (1 - momentum) * theta (momentum 0: copy); parameters
        only: the copy's batch-norm statistics are its own, from its own forward passes."""
        for ema, source in zip(self.ema.parameters(), next_unit.parameters(), strict=True):
            ema.mul_(momentum).add_(source.detach(), alpha=1 - momentum)


def local_heads(rule: str, *, units: Sequence[nn.Module], shapes: Sequence[Sequence[int]], classifier: nn.Module,
                cuts: Sequence[int], aux_head: str, out_features: int,
                local_loss: str, widen: float, feature_dim: int) -> nn.ModuleList:
    """The auxiliary networks of modules 0..K-2 under `rule`."""
    def plain(shape):
        return heads.aux_head(aux_head, shape, out_features, widen=widen, feature_dim=feature_dim)

    if rule == "gll":
        return nn.ModuleList(plain(shapes[c]) for c in cuts)
    if rule == "auglocal":
        if local_loss != "cross_entropy":
            raise ValueError(f"local_rule='auglocal' ends each head in a copy of the classifier (class scores); "
                             f"it needs local_loss='cross_entropy', got {local_loss!r}")
        depths = auglocal_depths(cuts, len(units) - 1) if cuts else ()
        return nn.ModuleList(auglocal_head(units, shapes, classifier, c, d) for c, d in zip(cuts, depths))
    if rule == "man":
        return nn.ModuleList(MomentumHead(units[c + 1], plain(shapes[c + 1])) for c in cuts)
    raise ValueError(f"local_rule={rule!r} is unknown; expected one of {LOCAL_RULES}")
