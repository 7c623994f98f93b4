"""Auxiliary (local) heads and the reconstruction decoder (InfoPro, arXiv 2101.10832; docs/models.md).

Heads are named "<convs>c<fcs>f". On a (C, H, W) activation a head is: `convs`
conv3x3 (no bias) + BN + ReLU layers, global average pool, then `fcs` Linear
layers with ReLU between them (hidden width aux_feature_dim * w). The first
conv maps C -> C' with

    C' = 2C * w, stride 2   if C < 64
    C' = C * w,  stride 1   otherwise,

which is the paper's table for C in {16, 32, 64} (32w s2, 64w s2, 64w s1) and
its generalisation to other widths; a second conv (2c2f) keeps C', stride 1.
On a (F,) activation (an MLP's units) only the conv-free heads 0c1f and 0c2f
exist and the pooling is skipped. On (T, C) tokens (a transformer's units) the convs are
token-wise Linear + LayerNorm + GELU layers and the pooling averages the tokens
(models/token_heads.py).

With the decoder on, local module k (k = 0..K-2; module K-1 has the classifier) is
trained on lambda_x(k) * BCE + lambda_y(k) * aux_loss, the weights moving linearly from
(lambda_x1, lambda_y1) at k = 0 to (lambda_x2, lambda_y2) at k = K-2 (ratio k / (K-2),
0 when K = 2). The endpoints come from the paper's table when (arch, K, dataset) is
in it, else DEFAULT_LAMBDAS = (5, 0.5, 0.5, 1): strong reconstruction and some label
signal early, label signal dominant late, never zero label signal (the pattern of the
ResNet-110 rows of the table).
"""
from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .splits import dataset_key
from .token_heads import token_pooling_layers

# name -> (number of conv layers, number of Linear layers)
_HEAD_LAYOUT = {
    "0c1f": (0, 1),
    "0c2f": (0, 2),
    "1c1f": (1, 1),
    "1c2f": (1, 2),
    "1c3f": (1, 3),
    "2c2f": (2, 2),
}
AUX_HEADS = tuple(_HEAD_LAYOUT)

# (arch, dataset) -> K -> (lambda_x1, lambda_y1, lambda_x2, lambda_y2), InfoPro's and ContSup's code
_PAPER_LAMBDAS = {
    ("resnet32", "cifar10"): {2: (5, 1, 0, 0), 4: (6, 0, 1, 2), 8: (5, 0, 0, 2), 16: (5, 0.05, 0.2, 0.5)},
    ("resnet110", "cifar10"): {2: (5, 0.5, 0, 0), 4: (1, 0, 0, 1), 8: (5, 0, 0, 1), 16: (5, 0, 0.5, 1)},
    ("resnet110", "stl10"): {2: (10, 1, 0, 0), 4: (20, 0.2, 5, 2), 8: (20, 0.2, 5, 1), 16: (20, 0.5, 10, 0.1)},
    # K=4: InfoPro's lambda_y2 = 1; ContSup's code has 0, which leaves no label signal
    ("resnet110", "svhn"): {2: (1, 0.1, 0, 0), 4: (5, 0, 0.5, 1), 8: (5, 0, 0.5, 2), 16: (5, 0.2, 0.5, 1)},
}
DEFAULT_LAMBDAS = (5.0, 0.5, 0.5, 1.0)


def paper_lambdas(arch: str | None, num_modules: int, dataset: str = "cifar10"):
    """The paper's (lambda_x1, lambda_y1, lambda_x2, lambda_y2), or None if not in the table."""
    row = _PAPER_LAMBDAS.get((arch, dataset_key(dataset)), {}).get(num_modules)
    return None if row is None else tuple(float(v) for v in row)


def module_lambdas(endpoints: Sequence[float], num_modules: int) -> tuple[tuple[float, float], ...]:
    """(lambda_x(k), lambda_y(k)) for the local modules k = 0..K-2."""
    x1, y1, x2, y2 = endpoints
    weights = []
    for k in range(num_modules - 1):
        ratio = k / (num_modules - 2) if num_modules > 2 else 0.0
        weights.append((x1 * (1 - ratio) + x2 * ratio, y1 * (1 - ratio) + y2 * ratio))
    return tuple(weights)


def widened(width: float, widen: float) -> int:
    """int(width * widen), as the reference code rounds widened layers."""
    return int(width * widen)


def head_conv_width(channels: int, widen: float) -> tuple[int, int]:
    """(C', stride) of a head's first conv on C input channels."""
    if channels < 64:
        return widened(2 * channels, widen), 2
    return widened(channels, widen), 1


def aux_head(name: str, in_shape: Sequence[int], out_features: int, *, widen: float = 1,
             feature_dim: int = 128) -> nn.Sequential:
    """Auxiliary head `name` for activations of shape in_shape ((C, H, W), (T, C) or (F,)) -> (B, out)."""
    if name not in _HEAD_LAYOUT:
        raise ValueError(f"aux_head={name!r} is unknown; expected one of {AUX_HEADS}")
    num_convs, num_fcs = _HEAD_LAYOUT[name]
    layers: list[nn.Module] = []
    if len(in_shape) == 3:
        width = in_shape[0]
        if num_convs:
            conv_width, stride = head_conv_width(width, widen)
            for i in range(num_convs):
                layers += [nn.Conv2d(width, conv_width, 3, stride=stride if i == 0 else 1,
                                     padding=1, bias=False),
                           nn.BatchNorm2d(conv_width), nn.ReLU()]
                width = conv_width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    elif len(in_shape) == 2:
        layers, width = token_pooling_layers(num_convs, in_shape[1], head_conv_width(in_shape[1], widen)[0])
    elif len(in_shape) == 1:
        if num_convs:
            conv_free = tuple(n for n, (c, _) in _HEAD_LAYOUT.items() if c == 0)
            raise ValueError(f"aux_head={name!r} has conv layers but the activation at a cut has "
                             f"shape {tuple(in_shape)} (features, no space); use one of {conv_free}")
        width = in_shape[0]
    else:
        raise ValueError(f"auxiliary heads need (C, H, W), (T, C) or (F,) activations per sample, "
                         f"got shape {tuple(in_shape)}")
    hidden = widened(feature_dim, widen)
    for _ in range(num_fcs - 1):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class Decoder(nn.Module):
    """InfoPro's decoder: h -> bilinear upsample to the image size -> image in [0, 1].

    conv3x3 (C -> 12w, bias) + BN + ReLU + conv3x3 (12w -> image channels, bias) + sigmoid.
    The convs carry biases as in InfoPro's and ContSup's code, so parameter counts match.
    The loss is the binary cross-entropy against the un-normalised image, computed from
    the pre-sigmoid output (same value, numerically stable, safe under autocast).
    """

    def __init__(self, in_shape: Sequence[int], image_shape: Sequence[int], widen: float = 1):
        super().__init__()
        if len(in_shape) != 3 or len(image_shape) != 3:
            raise ValueError(f"reconstruct=True needs image inputs (C, H, W) and (C, H, W) "
                             f"activations at every cut, got activation {tuple(in_shape)} "
                             f"and input {tuple(image_shape)}")
        hidden = widened(12, widen)
        self.image_size = tuple(image_shape[1:])
        self.net = nn.Sequential(
            nn.Conv2d(in_shape[0], hidden, 3, padding=1, bias=True),
            nn.BatchNorm2d(hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, image_shape[0], 3, padding=1, bias=True),
        )

    def logits(self, h: Tensor) -> Tensor:
        h = F.interpolate(h, size=self.image_size, mode="bilinear", align_corners=True)
        return self.net(h)

    def forward(self, h: Tensor) -> Tensor:
        """Reconstructed image (B, C, H, W) in [0, 1]."""
        return self.logits(h).sigmoid()

    def loss(self, h: Tensor, image: Tensor) -> Tensor:
        """Mean BCE (nats per pixel) between the reconstruction and image (values in [0, 1])."""
        return F.binary_cross_entropy_with_logits(self.logits(h).float(), image.float())
