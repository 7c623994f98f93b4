"""TensorLoader: batches of an in-memory ImageTensors on a device, augmented there.

The uint8 images are moved to the device once; every batch is a gather from them, then the
augmentation (padded random crop and flip, one gather) and the normalisation, all batched in
torch. The order and the augmentation of a pass depend only on (seed, epoch): they are drawn on
the CPU from a generator seeded by that pair, so that they are the same on every device.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mi_analysis.data.records import DatasetInfo, ImageTensors
from mi_analysis.data.sampling import STREAM_LOADER, torch_generator
from mi_analysis.data.transforms import crop_and_flip, draw_augment, normalize


class TensorLoader:
    """Iterate over (x float32 (B, C, H, W) normalised, y int64 (B,)) on `device`.

    shuffle:  a fresh random order each epoch (else the stored order).
    augment:  apply info.augment (training); use augment=False, shuffle=False for evaluation.
    seed, epoch: a pass is fixed by (seed, epoch). Each pass uses the current `epoch` and then
              advances it by one, so a loop over epochs gets new orders even without
              set_epoch; set_epoch(e) makes the next pass epoch e (to resume or reproduce).
    drop_last: drop the last batch when it is smaller than batch_size.
    channels_last: return x in torch.channels_last memory format.
    """

    def __init__(
        self,
        data: ImageTensors,
        info: DatasetInfo,
        batch_size: int = 128,
        shuffle: bool = True,
        augment: bool = True,
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        if not isinstance(data, ImageTensors):
            raise TypeError(f"data must be ImageTensors, got {type(data).__name__}")
        if not isinstance(info, DatasetInfo):
            raise TypeError(f"info must be a DatasetInfo, got {type(info).__name__}")
        expected = (info.in_channels, info.image_size, info.image_size)
        if tuple(data.images.shape[1:]) != expected:
            raise ValueError(
                f"data images have shape (N, {', '.join(map(str, data.images.shape[1:]))}) but info for "
                f"{info.name} says (N, {', '.join(map(str, expected))})"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.info = info
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment and not info.augment.is_identity
        self.device = torch.device(device)
        self.seed = seed
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.epoch = 0
        self._images = data.images.to(self.device)
        self._labels = data.labels.to(self.device)

    @property
    def num_samples(self) -> int:
        return self._labels.shape[0]

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch `epoch` (a non-negative int)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = self.num_samples
        generator = torch_generator(self.seed, STREAM_LOADER, epoch)
        order = torch.randperm(count, generator=generator) if self.shuffle else torch.arange(count)
        order = order.to(self.device)
        spec = self.info.augment
        if self.augment:  # per position in this epoch's order
            offsets, flips = (t.to(self.device) for t in draw_augment(count, spec, generator))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = slice(start, start + self.batch_size)
            index = order[batch]
            images = self._images[index]
            if self.augment:
                images = crop_and_flip(images, spec.pad, spec.pad_mode, offsets[batch], flips[batch])
            x = normalize(images, self.info)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self._labels[index]
