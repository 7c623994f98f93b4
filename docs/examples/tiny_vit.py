"""A small ViT-style token model for `--arch tiny_vit:tiny_vit` (docs/models.md, token models).

Put this folder on PYTHONPATH, then e.g.

    mi-analysis train --arch tiny_vit:tiny_vit -K 3 --context E --dataset digits

Units: the patch embedding (patchify conv, class token, position embedding), then `depth`
pre-norm transformer blocks, each (B, T, C) -> (B, T, C) with T = (image_size / patch)^2 + 1;
head: LayerNorm, the class token, Linear.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn


class PatchEmbedding(nn.Module):
    """Images (B, C_in, H, W) -> tokens (B, 1 + (H/P)(W/P), dim): class token first."""

    def __init__(self, in_channels: int, image_size: int, patch: int, dim: int):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size={image_size} is not a multiple of the patch size {patch}")
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.randn(1, 1 + (image_size // patch) ** 2, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.class_token.expand(len(x), -1, -1), tokens], dim=1) + self.position


class ClassTokenHead(nn.Module):
    """Tokens (B, T, dim) -> logits: LayerNorm, the class token, Linear."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc(self.norm(tokens)[:, 0])


def tiny_vit(*, num_classes: int, in_channels: int, image_size: int, dim: int = 32, depth: int = 4,
             heads: int = 4, patch: int = 4):
    """(units, head) of a ViT with `depth` blocks of width `dim` on patch x patch patches."""
    units = OrderedDict(embed=PatchEmbedding(in_channels, image_size, patch, dim))
    for i in range(depth):
        units[f"block{i}"] = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                                        activation="gelu", batch_first=True, norm_first=True)
    return units, ClassTokenHead(dim, num_classes)
