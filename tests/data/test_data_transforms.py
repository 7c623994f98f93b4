"""Batched transforms: padded crop and flip against F.pad + slicing, normalisation known answers."""

import pytest
import torch
import torch.nn.functional as F

from mi_analysis.data import (
    AugmentSpec,
    DatasetInfo,
    crop_and_flip,
    dataset_info,
    normalize,
    resize_images,
    unnormalize,
)
from mi_analysis.data.transforms import draw_augment

TORCH_PAD_MODE = {"reflect": "reflect", "zeros": "constant"}


def _random_images(n=6, c=3, h=8, w=8, seed=0):
    return torch.randint(0, 256, (n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros"])
def test_crop_equals_the_window_of_the_padded_image(pad_mode):
    images, pad = _random_images(), 3
    padded = F.pad(images.float(), (pad,) * 4, mode=TORCH_PAD_MODE[pad_mode]).to(torch.uint8)
    offsets = torch.tensor([[0, 0], [6, 6], [0, 6], [6, 0], [2, 5], [3, 3]])
    flips = torch.tensor([False, True, False, True, True, False])
    out = crop_and_flip(images, pad, pad_mode, offsets, flips)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for i, ((r, c), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        window = padded[i, :, r : r + 8, c : c + 8]
        assert torch.equal(out[i], window.flip(-1) if flip else window)


def test_centre_crop_without_flip_is_the_identity_and_flip_mirrors():
    images, pad = _random_images(), 2
    centre = torch.full((6, 2), pad)
    assert torch.equal(crop_and_flip(images, pad, "reflect", centre, torch.zeros(6, dtype=torch.bool)), images)
    assert torch.equal(crop_and_flip(images, pad, "zeros", centre, torch.ones(6, dtype=torch.bool)), images.flip(-1))


def test_zero_padding_shows_up_as_zero_rows_and_columns():
    images = torch.full((1, 1, 8, 8), 200, dtype=torch.uint8)
    out = crop_and_flip(images, 2, "zeros", torch.tensor([[0, 4]]), torch.tensor([False]))
    assert (out[0, 0, :2] == 0).all() and (out[0, 0, 2:, :6] == 200).all() and (out[0, 0, :, 6:] == 0).all()


def test_reflect_padding_needs_pad_below_image_size():
    with pytest.raises(ValueError, match="pad < image size"):
        crop_and_flip(
            _random_images(h=4, w=4),
            4,
            "reflect",
            torch.zeros(6, 2, dtype=torch.long),
            torch.zeros(6, dtype=torch.bool),
        )


def test_draw_augment_covers_every_offset_and_flips_about_half():
    offsets, flips = draw_augment(4000, AugmentSpec(2, "zeros", True), torch.Generator().manual_seed(1))
    assert set(offsets.flatten().tolist()) == {0, 1, 2, 3, 4}
    assert 0.45 < flips.float().mean().item() < 0.55
    _, no_flips = draw_augment(100, AugmentSpec(2, "zeros", False), torch.Generator().manual_seed(1))
    assert not no_flips.any()


def test_normalize_known_answers_and_round_trip():
    info = dataset_info("svhn")  # mean 0.5, std 0.5: 0 -> -1, 255 -> 1, 51 -> -0.6
    images = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 2, 3).contiguous()
    x = normalize(images, info)
    assert x.dtype == torch.float32
    assert torch.allclose(x[0, 0, 0], torch.tensor([-1.0, 1.0, -0.6]), atol=1e-6)
    cifar = dataset_info("cifar10")
    x = normalize(images, cifar)
    expected_zero = -torch.tensor(cifar.mean) / torch.tensor(cifar.std)
    assert torch.allclose(x[0, :, 0, 0], expected_zero, atol=1e-6)
    assert torch.allclose(x[0, 0, 0, 0], torch.tensor(-125.3 / 63.0), atol=1e-6)
    assert torch.allclose(unnormalize(x, cifar) * 255, images.float(), atol=1e-3)


def test_normalize_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        normalize(_random_images(c=3), dataset_info("mnist"))


def test_resize_keeps_constant_images_constant_and_skips_same_size():
    images = torch.full((2, 3, 8, 8), 77, dtype=torch.uint8)
    assert torch.equal(resize_images(images, 16), torch.full((2, 3, 16, 16), 77, dtype=torch.uint8))
    assert torch.equal(resize_images(images, 4), torch.full((2, 3, 4, 4), 77, dtype=torch.uint8))
    assert resize_images(images, 8) is images


def test_augment_spec_and_info_validate():
    with pytest.raises(ValueError, match="pad_mode"):
        AugmentSpec(2, "edge", False)
    assert AugmentSpec(0, "zeros", False).is_identity
    assert isinstance(dataset_info("digits"), DatasetInfo)
