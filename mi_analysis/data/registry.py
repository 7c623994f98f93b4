"""The data-set registry: names, facts (classes, channels, size, statistics, augmentation) and readers.

Normalisation and augmentation follow the papers' code (InfoPro, arXiv 2101.10832; ContSup,
arXiv 2312.07636; table in docs/training.md) where the papers trained on the set; the others are
chosen here:
- cifar10, cifar100: reflect-pad 4, random 32x32 crop, horizontal flip; mean/std
  (125.3, 123.0, 113.9)/255 and (63.0, 62.1, 66.7)/255, the CIFAR-10 statistics the papers'
  code uses for both CIFAR sets.
- svhn: zero-pad 2, random crop, no flip (digits are not mirror-symmetric); 0.5/0.5.
- stl10: zero-pad 4, random 96x96 crop, flip; 0.5/0.5 (as the papers' code).
- mnist: zero-pad 2 (the background is black), crop, no flip; mean/std of the 60,000 training
  images (0.1307, 0.3081).
- fashion_mnist: zero-pad 2, crop, flip (garments are nearly mirror-symmetric); mean/std of the
  60,000 training images (0.2860, 0.3530).
- fashion_mnist_subset: the first 6,000 training and 2,000 test images of fashion_mnist, bundled
  with the package (offline); fashion_mnist's augmentation and statistics.
- digits: zero-pad image_size / 8, crop, no flip; mean/std of the 1,300 training images at the
  default 16x16 (0.3057, 0.3190).
- synthetic: reflect-pad image_size / 8 (the gratings have random phase, so a shift keeps the
  class), crop, no flip (a mirror image changes the grating's orientation, i.e. its class);
  mean 0.5 and std 0.233, the pixel statistics of the default rule (noise=0.2).
The padding is given at the default image size and scales with image_size when the images
are resized (rounded to whole pixels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mi_analysis.data.digits import read_digits
from mi_analysis.data.file_sources import (
    read_cifar10,
    read_cifar100,
    read_fashion_mnist,
    read_mnist,
    read_stl10,
    read_svhn,
)
from mi_analysis.data.fashion_mnist_subset import read_fashion_mnist_subset
from mi_analysis.data.records import AugmentSpec, DatasetInfo, ImageTensors
from mi_analysis.data.synthetic import SYNTHETIC_OPTIONS, check_synthetic_options, read_synthetic
from mi_analysis.data.transforms import resize_images

# (root, download, image_size, options) -> (train, test) at image_size
Reader = Callable[[Path, bool, int, Mapping[str, Any]], tuple[ImageTensors, ImageTensors]]

_CIFAR_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
_CIFAR_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)
_HALF = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registry entry. image_size and augment are the defaults; options are the data set's own
    keyword arguments with their defaults (an option named num_classes or in_channels sets
    that fact of the data set)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: AugmentSpec
    read: Reader
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check_options: Callable[..., None] | None = None  # raises ValueError on a bad option value


def _files(reader: Callable[[Path, bool], tuple[ImageTensors, ImageTensors]]) -> Reader:
    """A file reader (native size) as a registry reader that resizes when asked."""

    def read(
        root: Path, download: bool, image_size: int, options: Mapping[str, Any]
    ) -> tuple[ImageTensors, ImageTensors]:
        train, test = reader(root, download)
        return (
            ImageTensors(resize_images(train.images, image_size), train.labels),
            ImageTensors(resize_images(test.images, image_size), test.labels),
        )

    return read


def _read_digits(
    root: Path, download: bool, image_size: int, options: Mapping[str, Any]
) -> tuple[ImageTensors, ImageTensors]:
    return read_digits(image_size)


def _read_synthetic(
    root: Path, download: bool, image_size: int, options: Mapping[str, Any]
) -> tuple[ImageTensors, ImageTensors]:
    return read_synthetic(image_size, **options)


_REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "cifar10", 10, 3, 32, _CIFAR_MEAN, _CIFAR_STD, AugmentSpec(4, "reflect", True), _files(read_cifar10)
        ),
        DatasetSpec(
            "cifar100", 100, 3, 32, _CIFAR_MEAN, _CIFAR_STD, AugmentSpec(4, "reflect", True), _files(read_cifar100)
        ),
        DatasetSpec("svhn", 10, 3, 32, _HALF, _HALF, AugmentSpec(2, "zeros", False), _files(read_svhn)),
        DatasetSpec("stl10", 10, 3, 96, _HALF, _HALF, AugmentSpec(4, "zeros", True), _files(read_stl10)),
        DatasetSpec("mnist", 10, 1, 28, (0.1307,), (0.3081,), AugmentSpec(2, "zeros", False), _files(read_mnist)),
        DatasetSpec(
            "fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), AugmentSpec(2, "zeros", True), _files(read_fashion_mnist)
        ),
        DatasetSpec(
            "fashion_mnist_subset", 10, 1, 28, (0.2860,), (0.3530,), AugmentSpec(2, "zeros", True),
            _files(read_fashion_mnist_subset),
        ),
        DatasetSpec("digits", 10, 1, 16, (0.3057,), (0.3190,), AugmentSpec(2, "zeros", False), _read_digits),
        DatasetSpec(
            "synthetic",
            SYNTHETIC_OPTIONS["num_classes"],
            SYNTHETIC_OPTIONS["in_channels"],
            32,
            (0.5,),
            (0.233,),
            AugmentSpec(4, "reflect", False),
            _read_synthetic,
            SYNTHETIC_OPTIONS,
            check_synthetic_options,
        ),
    )
}


def available_datasets() -> tuple[str, ...]:
    """The registered data-set names."""
    return tuple(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def resolve_options(spec: DatasetSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The data set's options with defaults filled in; unknown keywords are a TypeError."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = f"valid options: {', '.join(spec.options)}" if spec.options else "it takes no options"
        raise TypeError(f"dataset {spec.name!r} got unknown option(s) {', '.join(unknown)}; {valid}")
    if spec.check_options is not None:
        spec.check_options(**options)
    return {**spec.options, **options}


def dataset_info(name: str, *, image_size: int | None = None, **options: Any) -> DatasetInfo:
    """Facts about data set `name` at `image_size` (default: its own size) with its `options`.

    image_size, when given, must be a multiple of 4 and at least 8 (a CIFAR ResNet halves the
    resolution twice); images of file-backed sets are then resized bilinearly.
    """
    spec = get_spec(name)
    resolved = resolve_options(spec, options)
    size = spec.image_size if image_size is None else image_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 4:
        raise ValueError(f"image_size must be None or an integer multiple of 4 that is >= 8, got {image_size!r}")
    in_channels = resolved.get("in_channels", spec.in_channels)
    mean, std = spec.mean, spec.std
    if len(mean) != in_channels:  # per-channel-alike statistics of a configurable channel count
        mean, std = mean[:1] * in_channels, std[:1] * in_channels
    pad = round(spec.augment.pad * size / spec.image_size)
    return DatasetInfo(
        name=spec.name,
        num_classes=resolved.get("num_classes", spec.num_classes),
        in_channels=in_channels,
        image_size=size,
        mean=mean,
        std=std,
        augment=dataclasses.replace(spec.augment, pad=pad),
    )
