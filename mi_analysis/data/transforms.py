"""Batched image transforms in torch, on whatever device the images are on.

Augmentation works on uint8 batches (B, C, H, W): a padded random crop is done as one gather
from the unpadded images (the padded image is never built), and the horizontal flip is folded
into the same gather. Normalisation turns uint8 into float32 as (x / 255 - mean) / std.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from mi_analysis.data.records import AugmentSpec, DatasetInfo

_RESIZE_CHUNK = 4096  # images per interpolation call, bounds the float32 copy in memory


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size) by bilinear interpolation
    (align_corners=False; antialiased when shrinking), rounded to the nearest integer."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < max(images.shape[-2:])
    chunks = []
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        x = images[start : start + _RESIZE_CHUNK].float()
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
        chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
    if not chunks:
        return images.new_empty((0, images.shape[1], size, size))
    return torch.cat(chunks)


def draw_augment(n: int, spec: AugmentSpec, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crop offsets int64 (n, 2) (row, col) in [0, 2 * pad] and flip flags bool (n,),
    drawn on the CPU from `generator` (so the result does not depend on the device)."""
    offsets = torch.randint(0, 2 * spec.pad + 1, (n, 2), generator=generator)
    if spec.flip:
        flips = torch.rand(n, generator=generator) < 0.5
    else:
        flips = torch.zeros(n, dtype=torch.bool)
    return offsets, flips


def crop_and_flip(
    images: torch.Tensor, pad: int, pad_mode: str, offsets: torch.Tensor, flips: torch.Tensor
) -> torch.Tensor:
    """Crop each image of uint8 (B, C, H, W) from its padded version at `offsets` (B, 2),
    then mirror it left-right where `flips` (B,) is True. Equals
    F.pad(images, (pad,) * 4, mode)[:, :, r:r + H, c:c + W] (then .flip(-1)) per image,
    with mode "reflect" (edge pixel not repeated) or "zeros"."""
    batch, channels, height, width = images.shape
    if pad_mode == "reflect" and pad >= min(height, width):
        raise ValueError(f"reflect padding needs pad < image size, got pad={pad} for {height}x{width} images")
    device = images.device
    offsets = offsets.to(device)
    rows = _source_index(height, pad, pad_mode, device)[offsets[:, :1] + torch.arange(height, device=device)]
    cols = _source_index(width, pad, pad_mode, device)[offsets[:, 1:] + torch.arange(width, device=device)]
    cols = torch.where(flips.to(device)[:, None], cols.flip(1), cols)  # (B, W)
    flat = rows.clamp(min=0)[:, :, None] * width + cols.clamp(min=0)[:, None, :]  # (B, H, W)
    out = images.reshape(batch, channels, height * width).gather(
        2, flat.reshape(batch, 1, height * width).expand(batch, channels, height * width)
    )
    out = out.reshape(batch, channels, height, width)
    if pad_mode == "zeros":
        outside = (rows < 0)[:, :, None] | (cols < 0)[:, None, :]  # (B, H, W)
        out = out.masked_fill(outside[:, None], 0)
    return out


def _source_index(size: int, pad: int, pad_mode: str, device: torch.device) -> torch.Tensor:
    """For each position of a padded axis (size + 2 pad), the source pixel index; -1 for zeros."""
    position = torch.arange(-pad, size + pad, device=device)
    if pad_mode == "reflect":
        position = position.abs()
        return torch.where(position > size - 1, 2 * (size - 1) - position, position)
    inside = (position >= 0) & (position < size)
    return torch.where(inside, position, torch.full_like(position, -1))


def normalize(images: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (x / 255 - mean) / std, on the images' device."""
    mean, std = _stats(info, images)
    return (images.float() / 255.0 - mean) / std


def unnormalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Inverse of `normalize` up to the uint8 rounding: float (N, C, H, W) -> pixels on the 0..1
    scale (what a reconstruction decoder targets, and what plots show)."""
    mean, std = _stats(info, x)
    return x * std + mean


def _stats(info: DatasetInfo, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if like.dim() != 4 or like.shape[1] != info.in_channels:
        raise ValueError(
            f"expected a (N, {info.in_channels}, H, W) tensor for {info.name}, got shape {tuple(like.shape)}"
        )
    return _stats_on(info.mean, info.std, like.device)


@functools.lru_cache(maxsize=64)
def _stats_on(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # cached: a loader normalises every batch, and building these on a GPU costs a host-to-device copy each time
    as_tensor = functools.partial(torch.tensor, dtype=torch.float32, device=device)
    return as_tensor(mean).view(1, -1, 1, 1), as_tensor(std).view(1, -1, 1, 1)
