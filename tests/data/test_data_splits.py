"""load_splits: exact sizes, disjointness, stratification, seeds, subsets and argument errors."""

import numpy as np
import pytest
import torch

from mi_analysis.data import available_datasets, dataset_info, load_splits
from mi_analysis.data.sampling import complement, stratified_choice


def test_stratified_choice_exact_size_and_largest_remainder_quota():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    picked = stratified_choice(labels, 15, np.random.default_rng(0))
    assert picked.shape == (15,) and torch.equal(picked, picked.sort().values) and len(set(picked.tolist())) == 15
    # quotas 7.5, 4.5, 3.0 -> floors 7, 4, 3 and one leftover to class 0 (tie with 1, smaller label wins)
    assert torch.bincount(labels[picked], minlength=3).tolist() == [8, 4, 3]
    assert torch.equal(complement(picked, 100), torch.tensor(sorted(set(range(100)) - set(picked.tolist()))))


def test_digits_split_sizes_disjoint_and_stratified():
    splits = load_splits("digits", val_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1170, 130, 497)
    train, val = set(splits.train_indices.tolist()), set(splits.val_indices.tolist())
    assert not train & val and train | val == set(range(1300))
    assert splits.train.images.dtype == torch.uint8 and splits.val.labels.dtype == torch.int64
    pool_counts = torch.bincount(torch.cat([splits.train.labels, splits.val.labels]), minlength=10).double()
    val_counts = torch.bincount(splits.val.labels, minlength=10).double()
    assert ((val_counts - 0.1 * pool_counts).abs() < 1).all()


def test_split_images_are_the_indexed_training_images():
    full = load_splits("digits", val_fraction=0.0)
    splits = load_splits("digits", val_fraction=0.2, seed=3)
    assert full.val is None and len(full.val_indices) == 0 and len(full.train) == 1300
    assert torch.equal(splits.val.images, full.train.images[splits.val_indices])
    assert torch.equal(splits.train.labels, full.train.labels[splits.train_indices])


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (load_splits("digits", seed=s) for s in (5, 5, 6))
    assert torch.equal(a.val_indices, b.val_indices) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.val_indices, c.val_indices)
    assert torch.equal(a.test.images, c.test.images)  # the digits test split never moves with the seed


def test_subsets_exact_stratified_and_independent_streams():
    small = load_splits("digits", train_subset=200, test_subset=100, val_fraction=0.25, seed=1)
    assert (len(small.train), len(small.val), len(small.test)) == (150, 50, 100)
    assert torch.bincount(small.test.labels, minlength=10).tolist() == [10] * 10
    assert torch.bincount(torch.cat([small.train.labels, small.val.labels]), minlength=10).tolist() == [20] * 10
    other = load_splits("digits", train_subset=300, test_subset=100, val_fraction=0.25, seed=1)
    assert torch.equal(small.test_indices, other.test_indices)


def test_image_size_resizes_and_scales_the_padding():
    splits = load_splits("digits", image_size=32, val_fraction=0.0)
    assert splits.train.images.shape == (1300, 1, 32, 32)
    assert splits.info.image_size == 32 and splits.info.augment.pad == 4
    assert dataset_info("digits").augment.pad == 2


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \[0, 1\), got 1.0"),
        ({"val_fraction": -0.1}, ValueError, "val_fraction"),
        ({"val_fraction": "0.1"}, TypeError, "val_fraction"),
        ({"val_fraction": 0.0001}, ValueError, "at least one image in each of train and val"),
        (
            {"train_subset": 5000},
            ValueError,
            "train_subset=5000 is larger than the 1300 images of the digits training set",
        ),
        ({"test_subset": 498}, ValueError, "test_subset=498 is larger than the 497 images of the digits test set"),
        ({"train_subset": 0}, ValueError, "train_subset must be None or a positive integer"),
        ({"seed": -1}, ValueError, "seed must be a non-negative integer"),
        ({"image_size": 30}, ValueError, "image_size must be None or an integer multiple of 4"),
        ({"image_size": 4}, ValueError, "image_size"),
        ({"num_classes": 3}, TypeError, "dataset 'digits' got unknown option.*it takes no options"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        load_splits("digits", **kwargs)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; valid names: cifar10, cifar100, svhn, stl10"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="valid names"):
        load_splits("CIFAR10")
    assert set(available_datasets()) == {
        "cifar10",
        "cifar100",
        "svhn",
        "stl10",
        "mnist",
        "fashion_mnist",
        "fashion_mnist_subset",
        "digits",
        "synthetic",
    }
