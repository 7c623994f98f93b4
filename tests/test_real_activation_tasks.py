"""The real-activations benchmark tasks have the MI they claim (benchmarks/real_activations.py)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "real_activations.py"
_spec = importlib.util.spec_from_file_location("real_activations", _PATH)
real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real)


def plug_in_mi(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in MI of two discrete columns, in nats."""
    joint = {}
    for a, b in zip(x, y):
        joint[a, b] = joint.get((a, b), 0) + 1
    n = len(x)
    px = {a: np.sum(x == a) / n for a in set(x)}
    py = {b: np.sum(y == b) / n for b in set(y)}
    return sum(c / n * math.log(c / n / (px[a] * py[b])) for (a, b), c in joint.items())


def test_fully_discrete_truth_is_the_plug_in_limit():
    x, y, mi = real.fully_discrete(n=200_000, seed=1)
    assert mi == pytest.approx(math.log(5) + 0.7 * math.log(0.7) + 0.3 * math.log(0.075))
    assert plug_in_mi(x[:, 0], y[:, 0]) == pytest.approx(mi, abs=0.01)


def test_invertible_maps_keep_the_gaussian_truth():
    x, y, mi = real.gaussian_pair_mapped(3, 0.8, lambda g: np.sinh(2.0 * g), n=50_000, seed=2)
    assert mi == pytest.approx(-1.5 * math.log(1 - 0.64))
    g_x, g_y = np.arcsinh(x) / 2.0, np.arcsinh(y) / 2.0  # undo the map: the Gaussian pair
    rho = np.mean([np.corrcoef(g_x[:, d], g_y[:, d])[0, 1] for d in range(3)])
    assert rho == pytest.approx(0.8, abs=0.01)
    assert np.abs(x).max() > 1e3  # heavy tails indeed


def test_relu_truth_without_clipping_is_the_gaussian_mixture_truth():
    """With a shift far below every value nothing is clipped: the ReLU task is a plain Gaussian
    mixture, whose posterior is a softmax of squared distances."""
    h, y, mi = real.relu_labels(dim=4, sep=1.5, shift=-50.0, n=10, seed=3)
    assert (h > 0).all()
    rng = np.random.default_rng(3)
    means = rng.normal(0.0, 1.5 / math.sqrt(2.0), size=(10, 4))
    draws = rng.integers(10, size=real.MC_SAMPLES)  # the same draws as the task's Monte Carlo
    h_mc = means[draws] + rng.standard_normal((real.MC_SAMPLES, 4))
    logits = -0.5 * ((h_mc[:, None, :] - means[None]) ** 2).sum(axis=2)
    log_post = logits - logits.max(axis=1, keepdims=True)
    log_post -= np.log(np.exp(log_post).sum(axis=1, keepdims=True))
    expected = math.log(10) + float((np.exp(log_post) * log_post).sum(axis=1).mean())
    assert mi == pytest.approx(expected, abs=1e-9)


def test_quantisation_and_noise_limits():
    _, _, fine = real.quantised_labels(dim=4, sep=1.5, step=1e-3, n=10, seed=4)
    _, _, plain = real.relu_labels(dim=4, sep=1.5, shift=-50.0, n=10, seed=4)
    assert fine == pytest.approx(plain, abs=0.01)  # a fine grid loses nothing
    _, _, coarse = real.quantised_labels(dim=4, sep=1.5, step=2.0, n=10, seed=4)
    assert coarse < fine - 0.05  # a coarse one loses information
    assert real.discrete_plus_noise(noise=0.01, n=10)[2] == pytest.approx(math.log(8), abs=1e-6)
    assert real.discrete_plus_noise(noise=100.0, n=10)[2] == pytest.approx(0.0, abs=0.01)


def test_suite_shapes_and_point_masses():
    tasks = {name: (x, y, mi) for name, x, y, mi in real.tasks(n=300)}
    assert len(tasks) == 7 and all(x.shape[0] == 300 and x.ndim == 2 for x, _, _ in tasks.values())
    x, _, _ = tasks["real-relu-labels-d8"]
    assert 0.3 < np.mean(x == 0.0) < 0.95  # ReLU point mass at 0
    assert tasks["real-relu-independent-3x3"][2] == 0.0
