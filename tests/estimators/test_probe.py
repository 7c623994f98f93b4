"""Probe lower bound (probe.py) against Gaussian mixtures with Monte Carlo ground truth."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mi_analysis.estimators import estimate
from mi_analysis.estimators import probe  # noqa: F401  (registers the methods)

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_estimators.py"
_spec = importlib.util.spec_from_file_location("bench_estimators", _BENCH)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_estimators"] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)

LOG10 = math.log(10)


def test_monte_carlo_truth_limits():
    # Means on top of each other: I = 0 exactly. Means 20 std apart: the label is readable, I = log 10.
    _, _, mi0, _ = bench.gaussian_mixture_task(3, 0.0, n=10, mc_samples=20_000)
    _, _, mi_far, _ = bench.gaussian_mixture_task(8, 40.0, n=10, mc_samples=20_000)
    assert mi0 == pytest.approx(0.0, abs=1e-12)
    assert mi_far == pytest.approx(LOG10, abs=1e-3)


@pytest.fixture(scope="module")
def mixture():
    h, y, mi, mc_se = bench.gaussian_mixture_task(4, 1.0, n=3000, seed=1, mc_samples=100_000)
    return h, y, mi, mc_se


def test_linear_probe_bounds_the_truth_and_is_close(mixture):
    h, y, true_mi, mc_se = mixture
    r = estimate(h, y, method="probe_linear", folds=3)
    assert r.kind == "lower_bound" and r.method == "probe_linear"
    assert r.value <= true_mi + 2 * r.stderr + 3 * mc_se  # a bound, up to held-out noise
    assert abs(r.value - true_mi) <= 0.1
    assert r.ci[0] <= r.value <= r.ci[1]
    assert r.params["chosen"] == ["linear"] * 3 and r.params["num_classes"] == 10


def test_mlp_probe_through_an_invertible_map():
    h, y, true_mi, mc_se = bench.gaussian_mixture_task(2, 1.5, "leaky", n=3000, seed=2, mc_samples=100_000)
    r = estimate(h, y, method="probe_mlp", folds=3, max_epochs=40)
    assert r.value <= true_mi + 2 * r.stderr + 3 * mc_se
    assert abs(r.value - true_mi) <= 0.1


def test_independent_labels_give_about_zero():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((3000, 8))
    y = rng.choice(4, size=3000, p=[0.55, 0.25, 0.15, 0.05])  # unbalanced: H(y) = 1.12 nats
    r = estimate(h, y, method="probe_linear", folds=3)
    assert -0.03 <= r.value <= 0.01
    assert r.ci[0] <= 0.0


def test_label_values_need_not_be_0_to_c(mixture):
    h, y, _, _ = mixture
    a = estimate(h, y, method="probe_linear", folds=3)
    b = estimate(h, y * 7 + 3, method="probe_linear", folds=3)
    assert a.value == pytest.approx(b.value, abs=1e-9)


def test_seed_reproducible(mixture):
    h, y, _, _ = mixture
    a = estimate(h[:600], y[:600], method="probe_mlp", folds=2, max_epochs=5, seed=5)
    b = estimate(h[:600], y[:600], method="probe_mlp", folds=2, max_epochs=5, seed=5)
    assert a.value == b.value and a.ci == b.ci


def test_bad_inputs():
    h, y = np.random.default_rng(0).standard_normal((100, 2)), np.arange(100) % 3
    with pytest.raises(ValueError, match="folds"):
        estimate(h, y, method="probe_linear", folds=1)
    with pytest.raises(ValueError, match="10 samples per fold"):
        estimate(h[:30], y[:30], method="probe_linear", folds=5)
    with pytest.raises(ValueError, match="integers"):
        estimate(h, y + 0.5, method="probe_linear")
    with pytest.raises(ValueError, match="weight_decays"):
        estimate(h, y, method="probe_linear", weight_decays=(0.1, -1.0))


def test_normal_scores_map_is_fitted_on_training_rows_only():
    import torch

    from mi_analysis.estimators.probe import InputMap

    train = torch.tensor([[3.0], [1.0], [2.0], [2.0]])
    scores = InputMap("normal_scores", train)(torch.tensor([[1.0], [2.0], [3.0], [0.0], [9.0]]))
    # mid-ranks among the 4 training values: 1, 2.5 (tie), 4; outside values get 0.5 and 4.5
    p = torch.tensor([1.0, 2.5, 4.0, 0.5, 4.5]) / 5
    expected = torch.distributions.Normal(0.0, 1.0).icdf(p)
    assert torch.allclose(scores.squeeze(1), expected, atol=1e-6)


def test_saturated_inputs_choose_normal_scores():
    # tanh squeezes the class structure into the tails; per-column normal scores undo it.
    h, y, true_mi, mc_se = bench.gaussian_mixture_task(4, 1.5, "tanh", n=3000, seed=3, mc_samples=100_000)
    r = estimate(h, y, method="probe_linear", folds=3)
    assert r.params["chosen_inputs"].count("normal_scores") >= 2
    assert r.value <= true_mi + 2 * r.stderr + 3 * mc_se
    assert abs(r.value - true_mi) <= 0.1
