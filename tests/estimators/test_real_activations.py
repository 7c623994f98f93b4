"""Estimators on data as activations look: ties, point masses, heavy tails, tiny n, high dimension, bad scale."""

import math
import re

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma

from mi_analysis.estimators import estimate
from mi_analysis.estimators.diagnostics import EstimatorWarning
from mi_analysis.estimators.knn import prepare_points
from mi_analysis.estimators.ksg import ksg_counts
from mi_analysis.estimators.validation import standardize

N = 2000


def plugin_entropy(labels):
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("method", ["ksg", "ksg2"])
def test_independent_binary_gives_zero(method):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 2, (N, 1)).astype(float), rng.integers(0, 2, (N, 1)).astype(float)
    r = estimate(x, y, method)
    assert abs(r.value) < 0.05 and r.ci[0] <= 0.0 <= r.ci[1] + 0.01
    assert any("Gao et al. (2017)" in note for note in r.notes)


@pytest.mark.parametrize("method", ["ksg", "ksg2"])
def test_tied_clusters_never_exceed_entropy(method):
    rng = np.random.default_rng(1)
    cluster = rng.integers(0, 10, N)
    centres = rng.standard_normal((10, 2))
    r = estimate(centres[cluster], np.tanh(centres)[cluster], method)  # y = f(x), 10 values
    assert r.value <= math.log(10) + 0.05 and r.value <= plugin_entropy(cluster) + 0.05
    assert r.value >= plugin_entropy(cluster) - 0.05


@pytest.mark.parametrize("method", ["ksg", "ksg2"])
def test_independent_relu_features_are_refused(method):
    rng = np.random.default_rng(2)
    x, y = (np.maximum(rng.standard_normal((N, 3)) - 1, 0) for _ in range(2))
    with pytest.raises(ValueError, match=rf"x column 0 mixes a repeated value \(8\d% .* {method} is biased"):
        estimate(x, y, method)
    assert abs(estimate(x, y, "auto").value) < 0.05  # the method the error names


def test_mixed_knn_on_relu_features():
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((N, 3)) - 1, 0)
    assert abs(estimate(x, rng.integers(0, 10, N), "mixed_knn").value) < 0.05
    labels = (x[:, 0] > 0).astype(int)  # y = f(x)
    assert estimate(x, labels, "mixed_knn").value <= plugin_entropy(labels) + 0.05
    with pytest.raises(ValueError, match="jitter=0 leaves exact ties in x"):
        estimate(x, labels, "mixed_knn", jitter=0.0)


def kdtree_counts(px, py, k):
    """KSG algorithm 1 marginal counts with scipy's float64 k-d tree, max-norm."""
    joint = np.hstack([px, py])
    dist = cKDTree(joint).query(joint, k=k + 1, p=np.inf)[0][:, -1]
    r = np.nextafter(dist, 0)  # strictly inside eps
    nx = cKDTree(px).query_ball_point(px, r, p=np.inf, return_length=True) - 1
    ny = cKDTree(py).query_ball_point(py, r, p=np.inf, return_length=True) - 1
    return nx, ny


def heavy(kind, rng, n):
    if kind == "cauchy":
        x = rng.standard_cauchy((n, 1))
        return x, x + rng.standard_cauchy((n, 1))
    if kind == "lognormal":
        x = rng.standard_normal((n, 2))
        return np.exp(2 * x), np.exp(2 * (x + rng.standard_normal((n, 2))))
    x = rng.standard_normal((n, 2)) * np.array([1e-9, 1e9])  # mixed scale within and across columns
    return x, np.hstack([x[:, :1] * 1e12 + rng.standard_normal((n, 1)), rng.standard_cauchy((n, 1)) * 1e-6])


@pytest.mark.parametrize("kind", ["cauchy", "lognormal", "mixed_scale"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_counts_equal_float64_kdtree_on_the_data_as_given(kind, precision):
    x, y = heavy(kind, np.random.default_rng(4), 4000)
    px, py = prepare_points([torch.from_numpy(x), torch.from_numpy(y)], standardize_columns=True, jitter_scale=0.0,
                            seed=0, precision=precision)
    assert px.dtype == torch.float64  # heavy tails: float32 falls back to float64
    sx, sy = standardize(torch.from_numpy(x)).numpy(), standardize(torch.from_numpy(y)).numpy()
    assert np.array_equal(px.numpy(), sx)  # no rounding, no noise: the data as given
    nx, ny, cxy = ksg_counts(px, py, (3,), 1, tile_elements=4000 * 333)[3]
    ref_x, ref_y = kdtree_counts(sx, sy, 3)
    assert np.array_equal(nx.numpy(), ref_x) and np.array_equal(ny.numpy(), ref_y) and not bool(cxy.any())
    r = estimate(x, y, "ksg", precision=precision)
    ref = digamma(3) + digamma(4000) - np.mean(digamma(ref_x + 1) + digamma(ref_y + 1))
    assert r.value == pytest.approx(ref, abs=1e-12)
    if precision == "float32":
        assert any("float64 used instead of float32" in note for note in r.notes)


def test_tie_breaking_noise_moves_a_tie_free_result_by_under_1e_3():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, 2))
    y = x + rng.standard_normal((N, 2))
    exact = estimate(x, y, "ksg").value
    assert abs(estimate(x, y, "ksg", jitter=1e-5).value - exact) < 1e-3
    assert abs(estimate(x, y, "ksg", precision="float32").value - exact) < 1e-3


@pytest.mark.parametrize("method", ["ksg", "ksg2", "gaussian", "mixed_knn", "auto", "kde_upper", "binning"])
def test_tiny_n_warns_and_notes_instead_of_silent_nan(method):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20, 1))
    y = rng.integers(0, 2, 20) if method == "mixed_knn" else x + rng.standard_normal((20, 1))
    with pytest.warns(EstimatorWarning, match=r"no stderr/CI: n=20 is too small"):
        r = estimate(x, y, method)
    assert math.isfinite(r.value) and any("no stderr/CI" in note for note in r.notes)


@pytest.mark.parametrize("method", ["ksg", "gaussian"])
def test_high_dimension_is_flagged(method):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((500, 200))
    with pytest.warns(EstimatorWarning, match=r"dimension 201 is high for n=500"):
        r = estimate(x, x[:, :1] + 0.1 * rng.standard_normal((500, 1)), method)
    assert any("dimension 201" in note for note in r.notes)


def test_value_near_the_knn_ceiling_is_flagged():
    x = np.random.default_rng(8).standard_normal((100, 1))
    with pytest.warns(EstimatorWarning, match="near the k-NN ceiling"):
        r = estimate(x, x + 1e-9 * np.arange(100)[:, None], "ksg")
    assert any("ceiling" in note for note in r.notes)


def test_huge_scale_is_standardised_and_overflowing_differences_are_refused():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((N, 1))
    y = x + rng.standard_normal((N, 1))
    base = estimate(x, y, "ksg").value
    assert estimate(x * 1e160, y * 1e-170, "ksg").value == pytest.approx(base, abs=1e-9)
    assert estimate(x * 1e160, y, "gaussian").value == pytest.approx(estimate(x, y, "gaussian").value, abs=1e-9)
    with pytest.raises(ValueError, match=r"x column 0 spans more than float64 can subtract"):
        estimate(np.vstack([x, [[1e308], [-1e308]]]), np.vstack([y, [[0.0], [1.0]]]), "ksg")


def test_constant_columns_are_flagged():
    rng = np.random.default_rng(10)
    x = np.hstack([rng.standard_normal((300, 1)), np.ones((300, 1))])
    with pytest.warns(EstimatorWarning, match=r"x: 1 of 2 column\(s\) constant"):
        estimate(x, x[:, :1] + rng.standard_normal((300, 1)), "ksg")


@pytest.mark.parametrize("method", ["ksg", "ksg2", "mixed_knn"])
@pytest.mark.parametrize("k", [2.5, True, "3", None])
def test_k_must_be_an_int(method, k):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((100, 1))
    y = rng.integers(0, 2, 100) if method == "mixed_knn" else x
    with pytest.raises(ValueError, match=rf"k must be a positive integer, got {re.escape(repr(k))}"):
        estimate(x, y, method, k=k)


@pytest.mark.parametrize("method", ["ksg", "gaussian", "binning", "kde_upper"])
@pytest.mark.parametrize("num_subsets", [1, 2.5, True])
def test_num_subsets_must_be_an_int_of_at_least_2(method, num_subsets):
    x = np.random.default_rng(12).standard_normal((100, 1))
    with pytest.raises(ValueError, match=rf"num_subsets must be an int >= 2 .*got {num_subsets!r}"):
        estimate(x, x, method, num_subsets=num_subsets)


@pytest.mark.parametrize("method", ["mixed_knn", "probe_linear"])
def test_integral_float_labels_are_refused_by_every_labels_method(method):
    rng = np.random.default_rng(13)
    with pytest.raises(ValueError, match=r"y labels must be integers \(integer or bool dtype\), got torch.float64"):
        estimate(rng.standard_normal((100, 2)), rng.integers(0, 2, 100).astype(float), method)
