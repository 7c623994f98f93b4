"""scikit-learn's bundled handwritten digits (offline): 1,797 images of 8x8 pixels, values 0..16.

Pixels are scaled to 0..255 and upsampled bilinearly (align_corners=False) to the requested
size, then rounded to uint8. The set has no official test split, so a fixed stratified split
holds out DIGITS_TEST_SIZE images as the test set; it uses its own seed (DIGITS_SPLIT_SEED),
not the experiment seed, so every run is tested on the same images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mi_analysis.data.records import ImageTensors
from mi_analysis.data.sampling import complement, rng_for, stratified_choice

DIGITS_TEST_SIZE = 497  # leaves 1,300 training images
DIGITS_SPLIT_SEED = 0
_DIGITS_MAX_VALUE = 16.0


def read_digits(image_size: int) -> tuple[ImageTensors, ImageTensors]:
    from sklearn.datasets import load_digits  # sklearn import is slow; only this reader needs it

    bunch = load_digits()
    pixels = torch.from_numpy(bunch.images).float()[:, None] * (255.0 / _DIGITS_MAX_VALUE)  # (1797, 1, 8, 8)
    if image_size != pixels.shape[-1]:
        pixels = F.interpolate(pixels, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = pixels.round().clamp(0, 255).to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    test_indices = stratified_choice(labels, DIGITS_TEST_SIZE, rng_for(DIGITS_SPLIT_SEED, 0))
    train_indices = complement(test_indices, labels.shape[0])
    return ImageTensors(images[train_indices], labels[train_indices]), ImageTensors(
        images[test_indices], labels[test_indices]
    )
