"""The token part of an auxiliary head: activations (T, C) per sample (docs/models.md, token models).

A head "<convs>c<fcs>f" on tokens keeps its layout with the convs made token-wise: each of the
`convs` layers is Linear(C -> C') + LayerNorm + GELU applied to every token (a 1x1 conv over a
sequence; C' from the image heads' width rule, no stride: tokens have no grid to subsample), then
the tokens are averaged (B, T, C') -> (B, C'), then the `fcs` Linear layers as on images.
"""
from __future__ import annotations

from torch import Tensor, nn


class MeanOverTokens(nn.Module):
    """(B, T, C) -> (B, C): the average of the tokens."""

    def forward(self, tokens: Tensor) -> Tensor:
        return tokens.mean(1)


def token_pooling_layers(num_convs: int, channels: int, conv_width: int) -> tuple[list[nn.Module], int]:
    """The token-wise layers and the pooling of a head on (T, channels) tokens, and the pooled width."""
    layers: list[nn.Module] = []
    width = channels
    for _ in range(num_convs):
        layers += [nn.Linear(width, conv_width), nn.LayerNorm(conv_width), nn.GELU()]
        width = conv_width
    return layers + [MeanOverTokens()], width
