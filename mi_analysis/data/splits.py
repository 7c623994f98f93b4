"""load_splits: a data set as train / validation / test ImageTensors.

The validation split is carved out of the official training set (seeded, stratified), so that
nothing is ever selected on the test set. Order of operations:
1. train_subset (optional): keep a stratified random train_subset images of the training set;
2. validation: round(val_fraction * n) of those images, stratified, become `val`; the rest `train`;
3. test_subset (optional): keep a stratified random test_subset images of the test set.
Each step draws from its own stream of `seed`, so e.g. changing train_subset leaves the test
subset where it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from mi_analysis.data.records import ImageTensors, Splits
from mi_analysis.data.registry import dataset_info, get_spec, resolve_options
from mi_analysis.data.sampling import (
    STREAM_TEST_SUBSET,
    STREAM_TRAIN_SUBSET,
    STREAM_VAL,
    complement,
    rng_for,
    stratified_choice,
)

DEFAULT_ROOT = "~/.cache/mi_analysis/data"


def load_splits(
    name: str,
    root: str | Path = DEFAULT_ROOT,
    *,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    image_size: int | None = None,
    **options: Any,
) -> Splits:
    """Load data set `name` (see available_datasets()) from `root` into uint8 tensors on the CPU.

    download:     let torchvision fetch missing files (file-backed sets only).
    val_fraction: share of the (subset of the) training set held out for validation, in [0, 1);
                  0 gives val None.
    seed:         non-negative int for the subset and validation draws.
    train_subset, test_subset: use only this many images (stratified), or None for all.
    image_size:   resize to this size (multiple of 4, >= 8); None keeps the data set's own size.
    options:      the data set's own options (synthetic: num_train, num_test, num_classes,
                  in_channels, noise, data_seed).
    Raises ValueError / TypeError on bad arguments, FileNotFoundError naming the missing files.
    """
    info = dataset_info(name, image_size=image_size, **options)
    _check_arguments(val_fraction, seed, train_subset, test_subset, download)
    spec = get_spec(name)
    train_full, test_full = spec.read(
        Path(root).expanduser(), download, info.image_size, resolve_options(spec, options)
    )
    for split, data in (("training", train_full), ("test", test_full)):
        _check_labels(name, split, data, info.num_classes)

    pool = _subset(name, "train_subset", train_full, train_subset, seed, STREAM_TRAIN_SUBSET)
    n_val = round(val_fraction * len(pool))
    if val_fraction > 0 and not 0 < n_val < len(pool):
        raise ValueError(
            f"val_fraction={val_fraction} of {len(pool)} training images gives {n_val} validation images; "
            f"it must leave at least one image in each of train and val"
        )
    val_in_pool = stratified_choice(train_full.labels[pool], n_val, rng_for(seed, STREAM_VAL))
    train_in_pool = complement(val_in_pool, len(pool))
    test = _subset(name, "test_subset", test_full, test_subset, seed, STREAM_TEST_SUBSET)
    return Splits(
        train=train_full.select(pool[train_in_pool]),
        val=train_full.select(pool[val_in_pool]) if val_fraction > 0 else None,
        test=test_full.select(test),
        info=info,
        train_indices=pool[train_in_pool],
        val_indices=pool[val_in_pool],
        test_indices=test,
    )


def _subset(name: str, argument: str, data: ImageTensors, size: int | None, seed: int, stream: int) -> torch.Tensor:
    """Indices of a stratified subset of `size` images of `data` (all of them for None)."""
    if size is None:
        return torch.arange(len(data))
    if size > len(data):
        split = "training" if argument == "train_subset" else "test"
        raise ValueError(f"{argument}={size} is larger than the {len(data)} images of the {name} {split} set")
    return stratified_choice(data.labels, size, rng_for(seed, stream))


def _check_arguments(
    val_fraction: float, seed: int, train_subset: int | None, test_subset: int | None, download: bool
) -> None:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not (math.isfinite(val_fraction) and 0 <= val_fraction < 1):
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for argument, value in (("train_subset", train_subset), ("test_subset", test_subset)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{argument} must be None or a positive integer, got {value!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")


def _check_labels(name: str, split: str, data: ImageTensors, num_classes: int) -> None:
    if len(data) and not 0 <= int(data.labels.min()) <= int(data.labels.max()) < num_classes:
        raise ValueError(
            f"the {name} {split} set has labels outside [0, {num_classes}): "
            f"min {int(data.labels.min())}, max {int(data.labels.max())}; are these files of another data set?"
        )
