"""method="auto" (auto.py): what it picks for each kind of data, and that the pick is sound."""

import math

import numpy as np
import pytest
import torch

from mi_analysis.estimators import estimate
from mi_analysis.estimators.auto import gaussian_mi_of_correlation, wishart_bias


def gaussian_pair(n=2000, dim=3, rho=0.6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    return x, y, -dim / 2 * math.log(1 - rho**2)


def test_labels_pick_the_probe_lower_bound():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 900)
    x = y[:, None] + rng.standard_normal((900, 2))
    r = estimate(x, y, method="auto")
    assert r.method == "auto->probe" and r.kind == "lower_bound"
    assert r.params["picked_by"] == "auto" and set(r.params["chosen"]) <= {"linear", "mlp"}


def test_gaussian_picks_the_gaussian_copula_and_is_accurate():
    x, y, true_mi = gaussian_pair()
    r = estimate(x, y, method="auto")
    assert r.method == "auto->gaussian_copula" and r.kind == "estimate"
    assert r.value == pytest.approx(true_mi, abs=0.05)


def test_monotone_maps_of_coordinates_change_nothing():
    # Normal scores depend on ranks only: exp / cube of single coordinates give the same number.
    x, y, _ = gaussian_pair(n=1000)
    a = estimate(x, y, method="auto")
    b = estimate(np.exp(x), y**3, method="auto")
    assert a.value == pytest.approx(b.value, abs=1e-9) and a.method == b.method


def test_dependence_without_correlation_picks_corrected_ksg():
    # y depends on |x| only: zero correlation, so no Gaussian copula; KSG sees the dependence.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2000, 1))
    y = np.abs(x) + 0.3 * rng.standard_normal((2000, 1))
    r = estimate(x, y, method="auto")
    assert r.method == "auto->ksg_copula_corrected" and r.kind == "estimate"
    assert r.value > 0.5
    assert r.params["surrogate_mi"] < 0.05  # the surrogate sees (almost) nothing to correct


def test_independence_gives_about_zero():
    rng = np.random.default_rng(2)
    r = estimate(rng.standard_normal((1500, 2)), rng.standard_normal((1500, 2)), method="auto")
    assert abs(r.value) <= 0.03


def test_wishart_bias_matches_simulation():
    # Plug-in Gaussian MI of independent 6+6-dim samples, n = 100: its mean is the bias alone.
    gen = torch.Generator().manual_seed(0)
    n, d = 100, 6
    values = []
    for _ in range(200):
        z = torch.randn(n, 2 * d, generator=gen, dtype=torch.float64)
        z = z - z.mean(0)
        c = z.T @ z
        s = torch.sqrt(torch.diagonal(c))
        values.append(gaussian_mi_of_correlation(c / s[:, None] / s[None, :], d))
    mean, se = float(np.mean(values)), float(np.std(values) / math.sqrt(len(values)))
    assert mean == pytest.approx(wishart_bias(n, d, d), abs=4 * se)


def test_seed_reproducible_and_bad_tolerance():
    x, y, _ = gaussian_pair(n=500)
    assert estimate(x, y, method="auto", seed=1).value == estimate(x, y, method="auto", seed=1).value
    with pytest.raises(ValueError, match="tolerance"):
        estimate(x, y, method="auto", tolerance=-1)


def test_too_few_samples_for_the_dimension_is_an_error():
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="n >= 4"):
        estimate(rng.standard_normal((100, 20)), rng.standard_normal((100, 10)), method="auto")
