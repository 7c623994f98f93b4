"""The data layer: every data set as uint8 tensors in memory, and a loader that batches,
augments and normalises them on the target device.

    from mi_analysis.data import available_datasets, dataset_info, load_splits, TensorLoader
    splits = load_splits("cifar10", root, val_fraction=0.1, seed=0)
    loader = TensorLoader(splits.train, splits.info, batch_size=128, device="cuda")
    for x, y in loader: ...
"""

from mi_analysis.data.loader import TensorLoader
from mi_analysis.data.records import AugmentSpec, DatasetInfo, ImageTensors, Splits
from mi_analysis.data.registry import available_datasets, dataset_info
from mi_analysis.data.splits import DEFAULT_ROOT, load_splits
from mi_analysis.data.transforms import crop_and_flip, normalize, resize_images, unnormalize

__all__ = [
    "AugmentSpec",
    "DEFAULT_ROOT",
    "DatasetInfo",
    "ImageTensors",
    "Splits",
    "TensorLoader",
    "available_datasets",
    "crop_and_flip",
    "dataset_info",
    "load_splits",
    "normalize",
    "resize_images",
    "unnormalize",
]
