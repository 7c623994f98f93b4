"""The bundled Fashion-MNIST subset: what it holds, where it is read from, identical to the full files."""
import pytest
import torch

from mi_analysis.data import fashion_mnist_subset as subset
from mi_analysis.data import load_splits
from mi_analysis.data.file_sources import read_fashion_mnist


@pytest.fixture
def no_system_folder(monkeypatch, tmp_path):
    monkeypatch.setattr(subset, "SYSTEM_DIR", tmp_path / "absent")


def test_the_bundled_files_hold_the_documented_subset_and_stay_small(no_system_folder, tmp_path):
    assert subset.subset_source(tmp_path) == subset.BUNDLED_DIR
    train, test = subset.read_fashion_mnist_subset(tmp_path, False)
    assert train.images.shape == (6000, 1, 28, 28) and test.images.shape == (2000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels, minlength=10).min() > 500
    assert train.labels.min() == 0 and train.labels.max() == 9
    assert torch.bincount(test.labels, minlength=10).min() > 150  # every class well represented
    size = sum(f.stat().st_size for f in subset.BUNDLED_DIR.iterdir())
    assert size < 4 * 2**20
    assert {"LICENSE", "README.md"} <= {f.name for f in subset.BUNDLED_DIR.iterdir()}
    assert "MIT" in (subset.BUNDLED_DIR / "LICENSE").read_text()


@pytest.mark.skipif(not subset.SYSTEM_DIR.is_dir(), reason="no full Fashion-MNIST IDX folder on this machine")
def test_the_full_folder_gives_identical_tensors_by_the_same_rule(tmp_path):
    assert subset.subset_source(tmp_path) == subset.SYSTEM_DIR
    full_train, full_test = read_fashion_mnist(subset.SYSTEM_DIR, False)
    bundled_train, bundled_test = read_fashion_mnist(subset.BUNDLED_DIR, False)
    assert torch.equal(full_train.images[:6000], bundled_train.images)
    assert torch.equal(full_train.labels[:6000], bundled_train.labels)
    assert torch.equal(full_test.images[:2000], bundled_test.images)
    assert torch.equal(full_test.labels[:2000], bundled_test.labels)
    assert torch.equal(subset.read_fashion_mnist_subset(tmp_path, False)[1].images, bundled_test.images)


def test_a_root_with_the_idx_files_is_read_first():
    assert subset.subset_source(subset.BUNDLED_DIR) == subset.BUNDLED_DIR


def test_a_folder_with_too_few_images_is_refused_by_name(tmp_path, monkeypatch):
    import gzip
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(header + bytes(10 * 784)))
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(10)))
    with pytest.raises(ValueError, match="fashion_mnist_subset: the training IDX files .* hold 10 images"):
        subset.read_fashion_mnist_subset(tmp_path, False)


def test_registered_under_its_name(no_system_folder, tmp_path):
    splits = load_splits("fashion_mnist_subset", tmp_path, val_fraction=0.1, seed=0, image_size=16)
    assert splits.train.images.shape == (5400, 1, 16, 16) and splits.val.images.shape[0] == 600
    assert splits.test.images.shape == (2000, 1, 16, 16) and splits.info.num_classes == 10
