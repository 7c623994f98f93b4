"""Data sets read from files in their official on-disk formats, through torchvision.

Each reader returns (train, test) as ImageTensors at the native image size. With
download=False the files torchvision needs are checked first, so that a missing file is
reported by name and place; with download=True torchvision fetches what is missing.
torchvision is imported inside the readers because its import is slow and only these
readers need it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mi_analysis.data.idx import IDX_FILES, find_idx_files, read_idx
from mi_analysis.data.records import ImageTensors


def read_cifar10(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    from torchvision.datasets import CIFAR10

    return _read_cifar("cifar10", CIFAR10, root, download)


def read_cifar100(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    from torchvision.datasets import CIFAR100

    return _read_cifar("cifar100", CIFAR100, root, download)


def read_svhn(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    """The SVHN train and test splits (the "extra" split is never used); digit 0 is label 0."""
    from torchvision.datasets import SVHN

    _require_files("svhn", root, [SVHN.split_list[split][1] for split in ("train", "test")], download)
    train = _construct("svhn", root, lambda: SVHN(str(root), split="train", download=download))
    test = _construct("svhn", root, lambda: SVHN(str(root), split="test", download=download))
    return _as_image_tensors(train.data, train.labels), _as_image_tensors(test.data, test.labels)


def read_stl10(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    """The 5,000 labelled training images and 8,000 test images, 96x96 (torchvision also
    insists on the unlabelled file being present, though it is not loaded here)."""
    from torchvision.datasets import STL10

    required = [f"{STL10.base_folder}/{name}" for name, _ in STL10.train_list + STL10.test_list]
    _require_files("stl10", root, required, download)
    train = _construct("stl10", root, lambda: STL10(str(root), split="train", download=download))
    test = _construct("stl10", root, lambda: STL10(str(root), split="test", download=download))
    return _as_image_tensors(train.data, train.labels), _as_image_tensors(test.data, test.labels)


def read_mnist(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    from torchvision.datasets import MNIST

    return _read_mnist_family("mnist", MNIST, root, download)


def read_fashion_mnist(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    from torchvision.datasets import FashionMNIST

    return _read_mnist_family("fashion_mnist", FashionMNIST, root, download)


def _read_cifar(name: str, dataset_class: Any, root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    folder = dataset_class.base_folder
    files = [entry[0] for entry in dataset_class.train_list + dataset_class.test_list]
    required = [f"{folder}/{f}" for f in files + [dataset_class.meta["filename"]]]
    _require_files(name, root, required, download)
    train = _construct(name, root, lambda: dataset_class(str(root), train=True, download=download))
    test = _construct(name, root, lambda: dataset_class(str(root), train=False, download=download))
    # torchvision keeps CIFAR as (N, H, W, C)
    return (
        _as_image_tensors(train.data.transpose(0, 3, 1, 2), train.targets),
        _as_image_tensors(test.data.transpose(0, 3, 1, 2), test.targets),
    )


def _read_mnist_family(name: str, dataset_class: Any, root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    """From a directory that holds the four IDX files itself (plain or .gz, e.g. a Debian
    dataset package), else through torchvision from root/<ClassName>/raw/."""
    idx_files = find_idx_files(root)
    if idx_files:
        missing = [f"{f}[.gz]" for f in IDX_FILES if f not in idx_files]
        if missing:
            raise FileNotFoundError(
                f"{name}: {root} holds IDX files but lacks {', '.join(missing)}; "
                f"a directory of IDX files needs all of {', '.join(IDX_FILES)} (plain or .gz)"
            )
        arrays = {f: read_idx(path) for f, path in idx_files.items()}
        train = _as_image_tensors(arrays["train-images-idx3-ubyte"][:, None], arrays["train-labels-idx1-ubyte"])
        test = _as_image_tensors(arrays["t10k-images-idx3-ubyte"][:, None], arrays["t10k-labels-idx1-ubyte"])
        return train, test
    raw = f"{dataset_class.__name__}/raw"
    required = [f"{raw}/{os.path.splitext(f)[0]}" for f, _ in dataset_class.resources]
    _require_files(
        name,
        root,
        required,
        download,
        alternative=f"or set root to a directory holding {', '.join(IDX_FILES)} (plain or .gz)",
    )
    train = _construct(name, root, lambda: dataset_class(str(root), train=True, download=download))
    test = _construct(name, root, lambda: dataset_class(str(root), train=False, download=download))
    return _as_image_tensors(train.data[:, None], train.targets), _as_image_tensors(test.data[:, None], test.targets)


def _require_files(name: str, root: Path, relative_paths: list[str], download: bool, alternative: str = "") -> None:
    if download:
        return
    missing = [p for p in relative_paths if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{name}: {len(missing)} of {len(relative_paths)} required files are missing under {root}: "
            f"{', '.join(missing)}. Pass download=True to fetch them, "
            f"or set root to the directory that holds them{' ' + alternative if alternative else ''}."
        )


def _construct(name: str, root: Path, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except RuntimeError as error:
        raise RuntimeError(
            f"{name}: torchvision could not load the files under {root} ({error}). They may be corrupt or "
            f"incomplete: remove them and load again with download=True."
        ) from error


def _as_image_tensors(images: Any, labels: Any) -> ImageTensors:
    images = torch.as_tensor(np.ascontiguousarray(images), dtype=torch.uint8).contiguous()
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return ImageTensors(images, labels)
