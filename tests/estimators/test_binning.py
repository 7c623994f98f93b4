"""Information-plane binning: plug-in MI of discretised activations, checked by hand."""

import math

import numpy as np
import pytest

from mi_analysis.estimators import estimate



def test_small_discrete_table_equals_hand_computed_plugin_mi():
    # joint counts of (x, y):   y=0  y=1
    #                     x=0:   4    0
    #                     x=1:   2    2
    #                     x=2:   0    4
    # H(X) = ln 3, H(Y) = ln 2, H(X,Y) = (2/3) ln 3 + (1/3) ln 6  =>  I = (2/3) ln 2
    x = np.array([0] * 4 + [1] * 4 + [2] * 4, dtype=float)
    y = np.array([0] * 4 + [0, 0, 1, 1] + [1] * 4)
    r = estimate(x, y, "binning", bins=3)
    assert r.value == pytest.approx(2 / 3 * math.log(2), abs=1e-12)
    assert r.kind == "proxy"


def test_units_are_binned_jointly():
    # y = a XOR b: each unit alone says nothing, the pair says everything (ln 2)
    ab = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, dtype=float)
    y = (ab[:, 0] != ab[:, 1]).astype(int)
    assert estimate(ab, y, "binning", bins=2).value == pytest.approx(math.log(2), abs=1e-12)
    assert estimate(ab[:, :1], y, "binning", bins=2).value == pytest.approx(0.0, abs=1e-12)


def test_sample_index_gives_entropy_of_t_and_the_bin_width_decides():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((500, 3))
    index = np.arange(500.0)  # a continuous y with distinct rows: Y is the sample index
    assert estimate(h, index, "binning", bins=10**6).value == pytest.approx(math.log(500), abs=1e-12)
    assert estimate(h, index, "binning", bins=1).value == pytest.approx(0.0, abs=1e-12)
    coarse, fine = (estimate(h, index, "binning", bins=b).value for b in (4, 30))
    assert 0.0 < coarse < fine < math.log(500)


def test_fixed_bin_width_is_anchored_at_zero():
    x = np.array([0.05, 0.15, 0.25, 0.26])  # width 0.1: bins 0, 1, 2, 2
    r = estimate(x, np.arange(4.0), "binning", bin_width=0.1)
    assert r.value == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)), abs=1e-12)
    assert r.params["bin_width"] == 0.1 and r.params["bins"] is None


def test_bin_y_bins_a_continuous_y_like_x():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 1))
    plain = estimate(x, x, "binning", bins=8, bin_y=True).value  # I(T; T) = H(T)
    assert plain == pytest.approx(estimate(x, np.arange(400.0), "binning", bins=8).value, abs=1e-12)


def test_bad_bins_raise():
    x = np.zeros((10, 1))
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        estimate(x, np.arange(10) % 2, "binning", bins=0)
    with pytest.raises(ValueError, match="bin_width must be a positive finite number"):
        estimate(x, np.arange(10) % 2, "binning", bin_width=-1.0)
