"""Input checks: every bad input gets an error that names the argument and the expectation."""

import numpy as np
import pytest
import torch

from mi_analysis.estimators import estimate
from mi_analysis.estimators.validation import (
    as_labels,
    as_samples,
    check_neighbors,
    check_same_n,
    constant_columns,
    standardize,
)



def test_numpy_torch_and_lists_become_float64_columns():
    expected = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    for given in ([1, 2, 3], np.array([1.0, 2.0, 3.0], dtype=np.float32), torch.tensor([1, 2, 3])):
        out = as_samples(given)
        assert out.dtype == torch.float64 and torch.equal(out, expected)
    assert as_samples(np.ones((4, 2)), dtype=torch.float32).dtype == torch.float32
    grad = torch.ones(3, 2, requires_grad=True)
    assert not as_samples(grad).requires_grad


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensors_stay_on_their_device():
    assert as_samples(torch.ones(3, 2, device="cuda")).device.type == "cuda"


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0]]), ValueError, r"x contains 1 NaN/inf"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, r"x contains 1 NaN/inf"),
        (np.zeros((0, 3)), ValueError, r"x is empty"),
        (np.zeros((4, 0)), ValueError, r"x is empty"),
        (np.zeros((4, 2, 2)), ValueError, r"x must have shape \(n,\) or \(n, d\), got \(4, 2, 2\)"),
        (np.array(["a", "b"]), TypeError, r"x must be a numeric array"),
        (torch.ones(3, dtype=torch.complex64), TypeError, r"x must be real-valued"),
    ],
)
def test_bad_samples(bad, error, match):
    with pytest.raises(error, match=match):
        as_samples(bad)


def test_labels():
    assert torch.equal(as_labels(np.array([0, 2, 1])), torch.tensor([0, 2, 1]))
    assert as_labels([True, False]).dtype == torch.int64
    for floats in ([0.0, 0.5], np.array([0.0, 2.0, 1.0])):
        with pytest.raises(ValueError, match=r"y labels must be integers \(integer or bool dtype\), got torch.float64"):
            as_labels(floats)
    with pytest.raises(ValueError, match=r"y labels must be 1-D \(n,\), got shape \(3, 1\)"):
        as_labels(np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"y has a single class \(4\)"):
        as_labels([4, 4, 4])
    with pytest.raises(ValueError, match="y is empty"):
        as_labels(np.array([], dtype=int))


def test_sample_counts():
    with pytest.raises(ValueError, match="x and y must have the same number of samples, got 3 and 4"):
        check_same_n(torch.zeros(3, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="need at least 2 samples, got 1"):
        check_same_n(torch.zeros(1, 1), torch.zeros(1))
    with pytest.raises(ValueError, match="k=5 neighbours need more than 5 samples, got n=5"):
        check_neighbors(5, 5)
    with pytest.raises(ValueError, match="k must be a positive integer, got 2.5"):
        check_neighbors(10, 2.5)


def test_errors_reach_the_caller_of_estimate():
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ValueError, match="same number of samples, got 20 and 19"):
        estimate(x, x[:19], "ksg")
    with pytest.raises(ValueError, match="x contains"):
        estimate(np.where(x > 1, np.nan, x), x, "gaussian")
    with pytest.raises(ValueError, match="k=20 neighbours need more than 20 samples"):
        estimate(x, x, "ksg", k=20)
    with pytest.raises(ValueError, match="y labels must be integers"):
        estimate(x, x[:, 0], "mixed_knn")


def test_constant_columns_standardise_to_zero():
    x = torch.tensor([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]], dtype=torch.float64)
    assert constant_columns(x).tolist() == [False, True]
    z = standardize(x)
    assert torch.equal(z[:, 1], torch.zeros(3, dtype=torch.float64))
    assert z[:, 0].mean().abs() < 1e-15 and z[:, 0].std(unbiased=False) == pytest.approx(1.0)
