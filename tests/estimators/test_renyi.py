"""Matrix-based Renyi alpha-order MI."""

import math

import numpy as np
import pytest
import torch

from mi_analysis.estimators import estimate
from mi_analysis.estimators.renyi import gaussian_gram, matrix_renyi_entropy, silverman_width



def correlated(n, rho, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    noise = rng.standard_normal((n, 2))
    return x, rho * x + math.sqrt(1 - rho**2) * noise


def test_entropy_of_order_two_is_minus_log_frobenius_norm():
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((60, 3)))
    gram = gaussian_gram(z, 1.3)
    a = gram / torch.trace(gram)
    assert matrix_renyi_entropy(gram, 2.0) == pytest.approx(-math.log(float((a * a).sum())), abs=1e-10)
    # identity Gram (all samples far apart): log n for every alpha
    assert matrix_renyi_entropy(torch.eye(60, dtype=torch.float64), 1.01) == pytest.approx(math.log(60), abs=1e-10)


def test_value_lies_between_zero_and_the_smaller_entropy():
    x, y = correlated(300, 0.7, seed=1)
    r = estimate(x, y, "renyi")
    n = 300
    sx = matrix_renyi_entropy(gaussian_gram(torch.from_numpy((x - x.mean(0)) / x.std(0)), silverman_width(n, 2)), 1.01)
    sy = matrix_renyi_entropy(gaussian_gram(torch.from_numpy((y - y.mean(0)) / y.std(0)), silverman_width(n, 2)), 1.01)
    assert r.kind == "non_shannon"
    assert 0.0 < r.value <= min(sx, sy) <= math.log(n)


def test_monotone_in_correlation():
    values = [estimate(*correlated(300, rho, seed=2), "renyi").value for rho in (0.0, 0.3, 0.6, 0.9)]
    assert values == sorted(values) and values[-1] > values[0] + 0.3
    # a wider kernel lowers the floor that independent data sit on (joint entropy far from log n)
    wide = [estimate(*correlated(300, rho, seed=2), "renyi", sigma_x=2.0, sigma_y=2.0).value for rho in (0.0, 0.9)]
    assert wide[0] < 0.2 < wide[1]


def test_labels_use_a_delta_kernel():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    x = rng.standard_normal((300, 2)) + 3.0 * labels[:, None]
    informative = estimate(x, labels, "renyi").value
    shuffled = estimate(x, rng.permutation(labels), "renyi").value
    assert informative > shuffled + 0.4
    assert estimate(x, labels, "renyi").params["sigma_y"] is None


def test_bad_parameters_raise():
    x, y = correlated(50, 0.5, seed=4)
    with pytest.raises(ValueError, match="alpha must be a positive number other than 1"):
        estimate(x, y, "renyi", alpha=1.0)
    with pytest.raises(ValueError, match="sigma_x must be a positive number or None"):
        estimate(x, y, "renyi", sigma_x=-1.0)
    with pytest.raises(ValueError, match="n=50 > max_n=40"):
        estimate(x, y, "renyi", max_n=40)
