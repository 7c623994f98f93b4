"""TensorLoader: batches, determinism per (seed, epoch), augmentation only in training, devices."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from mi_analysis.data import AugmentSpec, ImageTensors, TensorLoader, dataset_info, normalize, unnormalize

CIFAR = dataset_info("cifar10")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _data(n=50, c=3, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, size, size), generator=generator, dtype=torch.uint8)
    return ImageTensors(images, torch.arange(n))  # label = index, so every batch says which images it holds


def _window(padded, row, col, flip):
    window = padded[:, row : row + 32, col : col + 32].to(torch.uint8)
    return window.flip(-1) if flip else window


def _collect(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_batches_shapes_types_and_every_sample_once_per_epoch():
    loader = TensorLoader(_data(), CIFAR, batch_size=16)
    batches = _collect(loader)
    assert len(loader) == len(batches) == 4 and [len(y) for _, y in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(50))
    dropped = TensorLoader(_data(), CIFAR, batch_size=16, drop_last=True)
    assert len(dropped) == 3 and [len(y) for _, y in dropped] == [16, 16, 16]


def test_same_seed_and_epoch_give_identical_batches():
    first, second = (TensorLoader(_data(), CIFAR, batch_size=16, seed=3) for _ in range(2))
    first.set_epoch(7)
    second.set_epoch(7)
    assert _same(_collect(first), _collect(second))


def test_epochs_advance_and_set_epoch_reproduces_one():
    loader = TensorLoader(_data(), CIFAR, batch_size=16, seed=3)
    epoch0, epoch1 = _collect(loader), _collect(loader)
    assert loader.epoch == 2 and not _same(epoch0, epoch1)
    loader.set_epoch(1)
    assert _same(_collect(loader), epoch1)
    other_seed = TensorLoader(_data(), CIFAR, batch_size=16, seed=4)
    assert not _same(_collect(other_seed), epoch0)


def test_evaluation_loader_is_the_normalised_data_in_order():
    data = _data()
    loader = TensorLoader(data, CIFAR, batch_size=16, shuffle=False, augment=False)
    x = torch.cat([x for x, _ in loader])
    assert torch.equal(x, normalize(data.images, CIFAR))
    assert torch.equal(torch.cat([y for _, y in loader]), data.labels)


@pytest.mark.parametrize("spec", [AugmentSpec(4, "reflect", True), AugmentSpec(2, "zeros", False)])
def test_augmented_images_are_windows_of_the_padded_originals(spec):
    info = dataclasses.replace(CIFAR, augment=spec)
    data = _data(n=40)
    loader = TensorLoader(data, info, batch_size=40, shuffle=False)
    x, y = next(iter(loader))
    pixels = (unnormalize(x, info) * 255).round().to(torch.uint8)
    padded = F.pad(data.images.float(), (spec.pad,) * 4, mode="reflect" if spec.pad_mode == "reflect" else "constant")
    seen_offsets, seen_flips = set(), set()
    for i in range(40):
        matches = [
            (r, c, flip)
            for r in range(2 * spec.pad + 1)
            for c in range(2 * spec.pad + 1)
            for flip in ((False, True) if spec.flip else (False,))
            if torch.equal(pixels[i], _window(padded[i], r, c, flip))
        ]
        assert len(matches) == 1, f"image {i}: {len(matches)} matching windows"
        seen_offsets.add(matches[0][:2])
        seen_flips.add(matches[0][2])
    assert len(seen_offsets) > 5 and seen_flips == ({False, True} if spec.flip else {False})
    assert torch.equal(y, data.labels)


def test_augmentation_is_off_when_the_spec_is_identity():
    info = dataclasses.replace(CIFAR, augment=AugmentSpec(0, "zeros", False))
    data = _data()
    x = torch.cat([x for x, _ in TensorLoader(data, info, batch_size=64, shuffle=False)])
    assert torch.equal(x, normalize(data.images, info))


def test_channels_last_keeps_the_values():
    plain = TensorLoader(_data(), CIFAR, batch_size=16, seed=1)
    last = TensorLoader(_data(), CIFAR, batch_size=16, seed=1, channels_last=True)
    for (xa, ya), (xb, yb) in zip(plain, last):
        assert xb.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_live_on_the_device_and_match_the_cpu(device):
    cpu = _collect(TensorLoader(_data(), CIFAR, batch_size=16, seed=2))
    on_device = _collect(TensorLoader(_data(), CIFAR, batch_size=16, seed=2, device=device))
    assert all(x.device.type == device and y.device.type == device for x, y in on_device)
    assert all(torch.allclose(xa, xb.cpu()) and torch.equal(ya, yb.cpu()) for (xa, ya), (xb, yb) in zip(cpu, on_device))


def test_loader_arguments_are_checked():
    with pytest.raises(
        ValueError, match=r"data images have shape \(N, 1, 28, 28\) but info for cifar10 says \(N, 3, 32, 32\)"
    ):
        TensorLoader(_data(c=1, size=28), CIFAR)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TensorLoader(_data(), CIFAR, batch_size=0)
    with pytest.raises(TypeError, match="data must be ImageTensors"):
        TensorLoader((torch.zeros(1), torch.zeros(1)), CIFAR)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        TensorLoader(_data(), CIFAR).set_epoch(-1)
    with pytest.raises(TypeError, match="images must be a uint8 tensor"):
        ImageTensors(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="same length"):
        ImageTensors(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
