"""Every reader, from tiny files written here in the data set's real on-disk format.

torchvision checks md5 sums of CIFAR, SVHN and STL-10 files; those checks are replaced here by
an existence check (tests only), everything else runs through torchvision's own code.
"""

import gzip
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets.cifar
import torchvision.datasets.stl10
import torchvision.datasets.svhn

from mi_analysis.data import dataset_info, load_splits
from mi_analysis.data.digits import DIGITS_TEST_SIZE

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def no_md5(monkeypatch):
    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    for module in (torchvision.datasets.cifar, torchvision.datasets.svhn, torchvision.datasets.stl10):
        monkeypatch.setattr(module, "check_integrity", exists)


def _images(n, c, size, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, c, size, size), dtype=np.uint8)


def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _write_cifar10(root, train, test):
    """train/test: (images (N, 3, 32, 32), labels) written as the python-pickle batches."""
    folder = root / "cifar-10-batches-py"
    images, labels = train
    for b, part in enumerate(np.array_split(np.arange(len(labels)), 5)):
        _pickle(
            folder / f"data_batch_{b + 1}",
            {"data": images[part].reshape(len(part), -1), "labels": labels[part].tolist()},
        )
    _pickle(folder / "test_batch", {"data": test[0].reshape(len(test[1]), -1), "labels": test[1].tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _write_mnist_dir(directory, train, test, compress, suffix=""):
    for split, (images, labels) in (("train", train), ("t10k", test)):
        _write_idx(directory / f"{split}-images-idx3-ubyte{suffix}", images[:, 0], compress)
        _write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)


def _assert_round_trip(data, images, labels):
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert torch.equal(data.images, torch.from_numpy(images))
    assert torch.equal(data.labels, torch.from_numpy(labels).long())


def test_cifar10_pickles_round_trip(tmp_path, no_md5):
    train = (_images(20, 3, 32, 0), np.arange(20) % 10)
    test = (_images(10, 3, 32, 1), np.arange(10)[::-1].copy())
    _write_cifar10(tmp_path, train, test)
    splits = load_splits("cifar10", tmp_path, val_fraction=0)
    _assert_round_trip(splits.train, *train)
    _assert_round_trip(splits.test, *test)


def test_cifar100_pickles_round_trip_and_resize(tmp_path, no_md5):
    folder = tmp_path / "cifar-100-python"
    train = (_images(8, 3, 32, 2), np.array([0, 99, 5, 50, 7, 1, 2, 98]))
    test = (_images(4, 3, 32, 3), np.array([3, 4, 99, 0]))
    for name, (images, labels) in (("train", train), ("test", test)):
        _pickle(
            folder / name,
            {
                "data": images.reshape(len(labels), -1),
                "fine_labels": labels.tolist(),
                "coarse_labels": (labels // 5).tolist(),
            },
        )
    _pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    splits = load_splits("cifar100", tmp_path, val_fraction=0)
    _assert_round_trip(splits.train, *train)
    _assert_round_trip(splits.test, *test)
    resized = load_splits("cifar100", tmp_path, val_fraction=0, image_size=16)
    assert resized.train.images.shape == (8, 3, 16, 16) and resized.info.augment.pad == 2


def test_svhn_mat_round_trip_maps_digit_zero_to_label_zero(tmp_path, no_md5):
    written = {}
    for split, n, seed in (("train", 6, 4), ("test", 3, 5)):
        images = _images(n, 3, 32, seed)
        digits = np.arange(n) % 10
        scipy.io.savemat(
            tmp_path / f"{split}_32x32.mat",
            {"X": images.transpose(2, 3, 1, 0), "y": np.where(digits == 0, 10, digits)[:, None].astype(np.uint8)},
        )
        written[split] = (images, digits)
    splits = load_splits("svhn", tmp_path, val_fraction=0)
    _assert_round_trip(splits.train, *written["train"])
    _assert_round_trip(splits.test, *written["test"])


def test_stl10_binaries_round_trip(tmp_path, no_md5):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    written = {}
    for split, n, seed in (("train", 3, 6), ("test", 2, 7), ("unlabeled", 1, 8)):
        images = _images(n, 3, 96, seed)
        (folder / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())  # stored column-major
        labels = np.arange(n) % 10
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())  # 1-based on disk
        written[split] = (images, labels)
    splits = load_splits("stl10", tmp_path, val_fraction=0)
    assert splits.info.image_size == 96
    _assert_round_trip(splits.train, *written["train"])
    _assert_round_trip(splits.test, *written["test"])


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_raw_idx_through_torchvision(tmp_path, name, folder):
    train = (_images(12, 1, 28, 9), np.arange(12) % 10)
    test = (_images(5, 1, 28, 10), np.arange(5))
    _write_mnist_dir(tmp_path / folder / "raw", train, test, compress=False)
    splits = load_splits(name, tmp_path, val_fraction=0)
    _assert_round_trip(splits.train, *train)
    _assert_round_trip(splits.test, *test)


@pytest.mark.parametrize("compress, suffix", [(True, ".gz"), (False, "")])
def test_a_directory_of_idx_files_is_detected(tmp_path, compress, suffix):
    train = (_images(10, 1, 28, 11), np.arange(10))
    test = (_images(4, 1, 28, 12), np.array([9, 8, 7, 6]))
    _write_mnist_dir(tmp_path, train, test, compress, suffix)
    splits = load_splits("fashion_mnist", tmp_path, val_fraction=0)
    _assert_round_trip(splits.train, *train)
    _assert_round_trip(splits.test, *test)


def test_an_incomplete_idx_directory_names_what_is_missing(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", _images(2, 1, 28, 0)[:, 0], compress=True)
    with pytest.raises(FileNotFoundError, match="lacks train-labels-idx1-ubyte"):
        load_splits("mnist", tmp_path)


def test_a_corrupt_idx_file_is_reported(tmp_path):
    train = (_images(3, 1, 28, 0), np.arange(3))
    _write_mnist_dir(tmp_path, train, train, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="header says shape"):
        load_splits("mnist", tmp_path)


@pytest.mark.parametrize(
    "name, first_missing",
    [
        ("cifar10", "cifar-10-batches-py/data_batch_1"),
        ("cifar100", "cifar-100-python/train"),
        ("svhn", "train_32x32.mat"),
        ("stl10", "stl10_binary/train_X.bin"),
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw/train-images-idx3-ubyte"),
    ],
)
def test_missing_files_are_listed_with_their_place_and_download_hint(tmp_path, name, first_missing):
    with pytest.raises(FileNotFoundError) as caught:
        load_splits(name, tmp_path)
    message = str(caught.value)
    assert first_missing in message and str(tmp_path) in message and "download=True" in message


def test_download_true_goes_through_torchvision_download(tmp_path, no_md5, monkeypatch):
    train = (_images(10, 3, 32, 13), np.arange(10))
    calls = []

    def fake_download(dataset):  # stands in for the network fetch
        calls.append(dataset.root)
        _write_cifar10(Path(dataset.root), train, train)

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", fake_download)
    splits = load_splits("cifar10", tmp_path, download=True, val_fraction=0)
    assert calls and calls[0] == str(tmp_path)
    _assert_round_trip(splits.train, *train)


def test_a_rejected_file_becomes_a_clear_runtime_error(tmp_path):
    _write_cifar10(tmp_path, (_images(5, 3, 32, 0), np.arange(5)), (_images(1, 3, 32, 0), np.arange(1)))
    with pytest.raises(RuntimeError, match="cifar10: torchvision could not load the files under .*download=True"):
        load_splits("cifar10", tmp_path)  # real md5 check: tiny files are not the official ones


def test_digits_shapes_ranges_and_known_pixels():
    from sklearn.datasets import load_digits

    splits = load_splits("digits", val_fraction=0)
    assert splits.train.images.shape == (1797 - DIGITS_TEST_SIZE, 1, 16, 16)
    assert splits.test.images.shape == (DIGITS_TEST_SIZE, 1, 16, 16)
    assert int(splits.train.images.max()) == 255 and int(splits.train.images.min()) == 0
    assert torch.bincount(splits.test.labels, minlength=10).min() >= 48
    native = load_splits("digits", val_fraction=0, image_size=8)
    bunch = load_digits()
    expected = np.round(bunch.images * 255 / 16).astype(np.uint8)
    # train + test hold exactly the 1,797 scaled images, each with its own label
    loaded = [
        (image.tobytes(), int(label))
        for part in (native.train, native.test)
        for image, label in zip(part.images[:, 0].numpy(), part.labels)
    ]
    assert Counter(loaded) == Counter((image.tobytes(), int(label)) for image, label in zip(expected, bunch.target))


def test_synthetic_is_configurable_seeded_and_balanced():
    splits = load_splits(
        "synthetic",
        val_fraction=0.2,
        num_train=300,
        num_test=60,
        num_classes=3,
        in_channels=2,
        image_size=16,
        data_seed=4,
    )
    assert splits.train.images.shape == (240, 2, 16, 16) and len(splits.val) == 60 and len(splits.test) == 60
    assert splits.info.num_classes == 3 and splits.info.in_channels == 2 and len(splits.info.mean) == 2
    assert torch.bincount(splits.test.labels).tolist() == [20, 20, 20]
    again = load_splits(
        "synthetic",
        val_fraction=0.2,
        num_train=300,
        num_test=60,
        num_classes=3,
        in_channels=2,
        image_size=16,
        data_seed=4,
        seed=9,
    )
    assert torch.equal(splits.test.images, again.test.images)  # data fixed by data_seed, not by seed
    other = load_splits(
        "synthetic", num_train=300, num_test=60, num_classes=3, in_channels=2, image_size=16, data_seed=5
    )
    assert not torch.equal(splits.test.images, other.test.images)
    with pytest.raises(ValueError, match="synthetic option num_classes must be an integer >= 2"):
        dataset_info("synthetic", num_classes=1)
    with pytest.raises(TypeError, match="valid options: num_train, num_test"):
        dataset_info("synthetic", classes=3)


def test_synthetic_is_not_linear_in_pixels_but_fourier_magnitudes_name_the_class():
    splits = load_splits("synthetic", val_fraction=0, num_train=2000, num_test=500)

    def nearest_mean_accuracy(features):
        train, test = features(splits.train), features(splits.test)
        centroids = torch.stack([train[splits.train.labels == c].mean(0) for c in range(10)])
        return (torch.cdist(test, centroids).argmin(1) == splits.test.labels).float().mean().item()

    def pixels(data):
        return data.images.flatten(1) / 255.0

    def magnitudes(data):
        return torch.fft.rfft2(data.images / 255.0 - 0.5).abs().flatten(1)

    assert nearest_mean_accuracy(pixels) < 0.6
    assert nearest_mean_accuracy(magnitudes) > 0.9
    x = splits.train.images / 255.0
    assert x.mean().item() == pytest.approx(0.5, abs=0.01) and x.std().item() == pytest.approx(0.233, abs=0.01)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_directory():
    splits = load_splits("fashion_mnist", FASHION_DIR, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert torch.bincount(splits.val.labels).tolist() == [600] * 10
    assert torch.bincount(splits.test.labels).tolist() == [1000] * 10
    pixels = torch.cat([splits.train.images, splits.val.images]).double() / 255
    info = dataset_info("fashion_mnist")
    assert pixels.mean().item() == pytest.approx(info.mean[0], abs=1e-4)
    assert pixels.std().item() == pytest.approx(info.std[0], abs=1e-4)
