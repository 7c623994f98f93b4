"""Which data set a run trains on, and how it is split and augmented."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataConfig:
    dataset: str = "digits"
    root: str = "~/.cache/mi_analysis/data"
    download: bool = False
    val_fraction: float = 0.1  # held out of the training set; model selection happens here, never on test
    train_subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None  # None = the dataset's native size
    augment: bool = True
