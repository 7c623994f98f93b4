"""Context encoders for cuts whose activations are tokens (T, C) (ContSup, arXiv 2312.07636, made
for transformers; docs/models.md, token models). context.ContextSupply picks them for token cuts.

- E (the image (C_in, H, W) -> (T, C)): a patch embedding, Conv2d(C_in -> C, kernel = stride =
  (H/g, W/g)) + LayerNorm, one token per patch of a g x g grid in row-major order (the order of a
  ViT's patchify conv). The grid comes from T: T = g^2 patch tokens, or T = g^2 + 1 with a class
  token first. The class token gets zeros: E adds no image content there (the next module's
  attention spreads the patches' context to it). No position embedding: token i is added the
  context of patch i, so positions are kept by construction.
- Rn from an earlier module input of tokens (T, C_m): token-wise Linear(C_m -> C) + LayerNorm
  (the same T required); from the image (module 0's input without E): the patch embedding above.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn


def token_grid(num_tokens: int) -> tuple[int, bool]:
    """(g, has_class_token) of T tokens: T = g^2 patches, or g^2 + 1 with a class token first."""
    for extra in (0, 1):
        side = math.isqrt(num_tokens - extra)
        if side > 0 and side * side == num_tokens - extra:
            return side, bool(extra)
    raise ValueError(f"a cut with {num_tokens} tokens is not a square grid of patches (g^2 tokens) or one "
                     "plus a class token (g^2 + 1); context encoders cannot place image patches on it")


class PatchContext(nn.Module):
    """Image (B, C_in, H, W) -> tokens (B, T, C): patch embedding, class token of zeros (module docstring)."""

    def __init__(self, image_shape: Sequence[int], out_shape: Sequence[int]):
        super().__init__()
        num_tokens, channels = out_shape
        side, self.class_token = token_grid(num_tokens)
        in_channels, height, width = image_shape
        if height % side or width % side:
            raise ValueError(f"context for {num_tokens} tokens cuts the image into {side}x{side} patches, but "
                             f"its {height}x{width} pixels are not a multiple of {side} a side")
        patch = (height // side, width // side)
        self.embed = nn.Conv2d(in_channels, channels, patch, stride=patch, bias=True)
        self.norm = nn.LayerNorm(channels)

    def forward(self, image: Tensor) -> Tensor:
        tokens = self.norm(self.embed(image).flatten(2).transpose(1, 2))
        if self.class_token:
            tokens = torch.cat([tokens.new_zeros(len(tokens), 1, tokens.shape[2]), tokens], dim=1)
        return tokens


def token_image_encoder(image_shape: Sequence[int], out_shape: Sequence[int]) -> nn.Module:
    """E at a token cut of out_shape (T, C)."""
    if len(image_shape) != 3:
        raise ValueError(f"context E cannot make tokens {tuple(out_shape)} from inputs of shape "
                         f"{tuple(image_shape)}; a patch embedding needs images (C, H, W)")
    return PatchContext(image_shape, out_shape)


def token_residual_encoder(in_shape: Sequence[int], out_shape: Sequence[int]) -> nn.Module:
    """Res at a token cut of out_shape (T, C) from a module input of in_shape."""
    if len(in_shape) == 3:  # the image, module 0's input
        return PatchContext(in_shape, out_shape)
    if len(in_shape) != 2 or in_shape[0] != out_shape[0]:
        raise ValueError(f"context R cannot make tokens {tuple(out_shape)} from a module input of shape "
                         f"{tuple(in_shape)}; token-wise maps need tokens with the same count T={out_shape[0]} "
                         "(or the image); use context E or R0 for this cut")
    return nn.Sequential(nn.Linear(in_shape[1], out_shape[1]), nn.LayerNorm(out_shape[1]))
