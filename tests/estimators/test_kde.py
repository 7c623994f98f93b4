"""Kolchinsky-Tracey pairwise-distance bounds for the noisy representation T = h + N(0, sigma^2 I)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from mi_analysis.estimators import estimate
from mi_analysis.estimators.kde import pairwise_mi_bound



def two_point_mixture_mi(sigma):
    """I(T; Y) for Y uniform on {-1, +1} and T = Y + N(0, sigma^2), by numerical integration."""
    t = np.linspace(-1 - 12 * sigma, 1 + 12 * sigma, 200_001)
    p_minus, p_plus = norm.pdf(t, -1, sigma), norm.pdf(t, 1, sigma)
    p = 0.5 * (p_minus + p_plus)
    h_t = -np.trapezoid(p * np.log(np.maximum(p, 1e-300)), t)
    return h_t - 0.5 * math.log(2 * math.pi * math.e * sigma**2)


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.5])
def test_bounds_bracket_the_mi_of_a_gaussian_mixture(sigma):
    # 2 classes whose samples all sit at -1 or +1: T | Y is exactly N(+-1, sigma^2)
    labels = np.repeat([0, 1], 100)
    h = (2.0 * labels - 1.0)[:, None]
    true = two_point_mixture_mi(sigma)
    upper = estimate(h, labels, "kde_upper", sigma=sigma)
    lower = estimate(h, labels, "kde_lower", sigma=sigma)
    assert (upper.kind, lower.kind) == ("upper_bound", "lower_bound")
    assert lower.value <= true <= upper.value
    # T depends on the sample only through its label, so I(T; X) (sample index) is the same number
    index = np.arange(200.0)
    assert estimate(h, index, "kde_upper", sigma=sigma).value == pytest.approx(upper.value, abs=1e-9)
    assert estimate(h, index, "kde_lower", sigma=sigma).value == pytest.approx(lower.value, abs=1e-9)


def test_limits_in_sigma():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((300, 4))
    n = len(h)
    for method in ("kde_upper", "kde_lower"):
        # tiny noise: every sample is told apart, I(T; X) -> log n
        assert estimate(h, h, method, sigma=1e-4).value == pytest.approx(math.log(n), abs=1e-6)
        # huge noise: nothing gets through
        assert estimate(h, h, method, sigma=1e4).value == pytest.approx(0.0, abs=1e-6)


def test_upper_is_above_lower_and_capped_by_label_entropy():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    h = rng.standard_normal((400, 3)) + labels[:, None]
    h_y = -sum(p * math.log(p) for p in np.bincount(labels) / 400)
    for sigma in (0.05, 0.3, 1.0, 3.0):
        up = estimate(h, labels, "kde_upper", sigma=sigma).value
        low = estimate(h, labels, "kde_lower", sigma=sigma).value
        assert 0.0 <= low <= up <= h_y + 1e-12
    assert estimate(h, labels, "kde_upper", sigma=1e-3).value == pytest.approx(h_y)


def test_tiling_does_not_change_the_value():
    rng = np.random.default_rng(2)
    h = torch.from_numpy(rng.standard_normal((257, 5)))
    codes = torch.from_numpy(rng.integers(0, 4, 257))
    whole = pairwise_mi_bound(h, codes, 0.8, "upper", tile_elements=257 * 257)
    tiled = pairwise_mi_bound(h, codes, 0.8, "upper", tile_elements=257 * 10)
    assert tiled == pytest.approx(whole, abs=1e-12)


def test_sigma_is_recorded_and_checked():
    h = np.random.default_rng(3).standard_normal((50, 2))
    assert estimate(h, h, "kde_upper", sigma=0.5).params["sigma"] == 0.5
    with pytest.raises(ValueError, match="sigma must be a positive finite number"):
        estimate(h, h, "kde_lower", sigma=0.0)
