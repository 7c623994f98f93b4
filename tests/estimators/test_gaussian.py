"""Gaussian / canonical-correlation closed form."""

import math

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage

from mi_analysis.estimators import estimate
from mi_analysis.estimators.gaussian import ledoit_wolf_intensity
from mi_analysis.estimators.validation import standardize



@pytest.mark.parametrize("dim,rho", [(1, 0.3), (1, 0.95), (3, 0.6), (10, 0.5)])
def test_correlated_gaussians_per_pair(dim, rho):
    rng = np.random.default_rng(dim)
    n = 5000
    x = rng.standard_normal((n, dim))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, dim))
    true = -0.5 * dim * math.log(1 - rho**2)
    r = estimate(x, y, "gaussian")
    # Shrinkage is part of the estimator: its target is the MI of (1 - lam) R + lam I, which has
    # correlations (1 - lam) rho. Plug-in bias is about dim^2 / (2n) (<= 0.01 nats); noise 3 stderr.
    lam = r.params["shrinkage_intensity"]
    target = -0.5 * dim * math.log(1 - ((1 - lam) * rho) ** 2)
    assert abs(r.value - target) <= 3 * r.stderr + dim**2 / (2 * n) + 1e-3, (r.value, target, r.stderr)
    assert abs(r.value - true) <= 0.05 * true + 3 * r.stderr  # and the shrinkage bias stays small here
    assert r.kind == "estimate" and r.ci[0] < r.value < r.ci[1]


def test_general_covariance_matches_log_det_formula():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5))
    cov = a @ a.T + 0.5 * np.eye(5)  # x = first 2 coordinates, y = last 3
    z = rng.multivariate_normal(np.zeros(5), cov, size=20000)
    true = 0.5 * (np.linalg.slogdet(cov[:2, :2])[1] + np.linalg.slogdet(cov[2:, 2:])[1] - np.linalg.slogdet(cov)[1])
    r = estimate(z[:, :2], z[:, 2:], "gaussian", shrinkage=0.0)
    assert r.value == pytest.approx(true, abs=3 * r.stderr + 1e-3)


def test_shrinkage_zero_is_the_exact_sample_canonical_correlation_formula():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((200, 3)), rng.standard_normal((200, 2))
    y[:, 0] += x[:, 0]
    z = np.hstack([x, y])
    c = np.cov(z, rowvar=False, bias=True)
    cxx, cyy, cxy = c[:3, :3], c[3:, 3:], c[:3, 3:]
    m = np.linalg.solve(cxx, cxy) @ np.linalg.solve(cyy, cxy.T)  # eigenvalues are rho_i^2
    rho2 = np.sort(np.linalg.eigvals(m).real)[-2:]
    expected = -0.5 * np.log(1 - rho2).sum()
    assert estimate(x, y, "gaussian", shrinkage=0.0).value == pytest.approx(expected, abs=1e-10)


def test_ledoit_wolf_intensity_matches_scikit_learn():
    rng = np.random.default_rng(3)
    z = standardize(torch.from_numpy(rng.standard_normal((80, 30)) + rng.standard_normal((80, 1))))
    assert ledoit_wolf_intensity(z) == pytest.approx(ledoit_wolf_shrinkage(z.numpy(), assume_centered=True), abs=1e-12)


def test_dimension_close_to_n_stays_finite_with_shrinkage():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((60, 40)), rng.standard_normal((60, 40))  # d = 80 > n: R is singular
    r = estimate(x, y, "gaussian")
    assert math.isfinite(r.value) and r.params["shrinkage_intensity"] > 0.1
    assert r.value < estimate(x[:, :5], y[:, :5] + x[:, :5], "gaussian").value  # independent stays small


def test_constant_columns_are_dropped_and_only_linear_dependence_is_seen():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 1))
    y = x + rng.standard_normal((3000, 1))
    padded = np.hstack([x, np.ones((3000, 1))])
    assert estimate(padded, y, "gaussian").value == pytest.approx(estimate(x, y, "gaussian").value, abs=1e-12)
    assert estimate(np.ones((3000, 2)), y, "gaussian").value == 0.0
    # y = x^2 depends on x but is uncorrelated with it: the Gaussian number is ~0
    assert estimate(x, x**2, "gaussian").value < 0.01


def test_bad_shrinkage_raises():
    x = np.random.default_rng(6).standard_normal((50, 2))
    with pytest.raises(ValueError, match="shrinkage must be 'ledoit_wolf' or a number in"):
        estimate(x, x, "gaussian", shrinkage=2.0)
