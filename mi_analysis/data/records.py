"""Plain records passed between the data modules and their users.

Images stay uint8 (N, C, H, W) with values 0..255 until a loader turns a batch into
normalised float32; labels are int64 (N,).
"""

from __future__ import annotations

import dataclasses

import torch

PAD_MODES: tuple[str, ...] = ("reflect", "zeros")


@dataclasses.dataclass(frozen=True)
class ImageTensors:
    """A labelled image set held in memory: images uint8 (N, C, H, W), labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise TypeError(f"images must be a uint8 tensor (N, C, H, W), got {_describe(self.images)}")
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 or self.labels.dim() != 1:
            raise TypeError(f"labels must be an int64 tensor (N,), got {_describe(self.labels)}")
        if self.images.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"images and labels must have the same length, got {self.images.shape[0]} images "
                f"and {self.labels.shape[0]} labels"
            )

    def __len__(self) -> int:
        return self.labels.shape[0]

    def select(self, indices: torch.Tensor) -> ImageTensors:
        """The images at `indices` (int64 tensor), in that order."""
        return ImageTensors(self.images[indices], self.labels[indices])


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation: pad by `pad` pixels (reflect or zeros), random crop back to the
    image size, and a random horizontal flip with probability 1/2 when `flip`."""

    pad: int
    pad_mode: str
    flip: bool

    def __post_init__(self) -> None:
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")

    @property
    def is_identity(self) -> bool:
        return self.pad == 0 and not self.flip


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model and a loader need to know about a data set.

    mean, std: per-channel statistics of the training pixels on the 0..1 scale, used as
    x_normalised = (x / 255 - mean) / std.
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: AugmentSpec


@dataclasses.dataclass(frozen=True)
class Splits:
    """Train / validation / test sets of one data set and its info.

    val is None when val_fraction == 0. *_indices (int64) locate each split's images in the
    official training set (train, val) or test set (test), for provenance.
    """

    train: ImageTensors
    val: ImageTensors | None
    test: ImageTensors
    info: DatasetInfo
    train_indices: torch.Tensor
    val_indices: torch.Tensor
    test_indices: torch.Tensor


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
