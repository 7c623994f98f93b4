"""Which data set a run trains on, and how it is split and augmented."""

from __future__ import annotations

import dataclasses

from mi_analysis._util.checks import int_at_least


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

    def __post_init__(self) -> None:
        if not isinstance(self.val_fraction, (int, float)) or isinstance(self.val_fraction, bool) \
                or not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be a number in [0, 1), got {self.val_fraction!r}")
        for name in ("train_subset", "test_subset", "image_size"):
            if getattr(self, name) is not None:
                int_at_least(getattr(self, name), f"data.{name}", 1)
