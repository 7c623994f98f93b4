"""Data set fashion_mnist_subset: the first 6,000 training and first 2,000 test images of Fashion-MNIST.

The selection rule is the official order: items 0..5,999 of the training IDX files and 0..1,999
of the test IDX files. The package ships exactly these items (fashion_mnist_subset/, gzip IDX,
MIT license, about 3.4 MB), so the set works offline on a fresh machine; a folder of the full
official IDX files (e.g. Debian's dataset-fashion-mnist) gives identical tensors by the same rule.
"""

from __future__ import annotations

from pathlib import Path

from mi_analysis.data.file_sources import read_fashion_mnist
from mi_analysis.data.idx import IDX_FILES, find_idx_files
from mi_analysis.data.records import ImageTensors

SUBSET_TRAIN_SIZE = 6000
SUBSET_TEST_SIZE = 2000
BUNDLED_DIR = Path(__file__).resolve().parent / "fashion_mnist_subset"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def subset_source(root: str | Path | None = None) -> Path:
    """The folder the subset is read from: `root` if it holds the four IDX files, else the system
    folder if it does, else the copy bundled with the package."""
    for folder in ([Path(root).expanduser()] if root is not None else []) + [SYSTEM_DIR]:
        if len(find_idx_files(folder)) == len(IDX_FILES):
            return folder
    return BUNDLED_DIR


def read_fashion_mnist_subset(root: Path, download: bool) -> tuple[ImageTensors, ImageTensors]:
    """(train, test) of the subset at 28x28 from subset_source(root); download is not needed."""
    folder = subset_source(root)
    train, test = read_fashion_mnist(folder, False)
    for split, data, size in (("training", train, SUBSET_TRAIN_SIZE), ("test", test, SUBSET_TEST_SIZE)):
        if len(data.labels) < size:
            raise ValueError(f"fashion_mnist_subset: the {split} IDX files in {folder} hold {len(data.labels)} "
                             f"images, fewer than the subset's first {size}")
    return (ImageTensors(train.images[:SUBSET_TRAIN_SIZE], train.labels[:SUBSET_TRAIN_SIZE]),
            ImageTensors(test.images[:SUBSET_TEST_SIZE], test.labels[:SUBSET_TEST_SIZE]))
