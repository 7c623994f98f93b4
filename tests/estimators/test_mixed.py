"""Ross (2014) mixed continuous/discrete k-NN estimator."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.special import digamma, logsumexp

from mi_analysis.estimators import estimate
from mi_analysis.estimators.knn import prepare_points
from mi_analysis.estimators.mixed import ross_value



def ross_reference(x, labels, k):
    """Straightforward Ross estimator with scipy k-d trees (max-norm); singleton classes dropped."""
    n = len(x)
    radius, k_own, sizes = np.zeros(n), np.zeros(n), np.zeros(n)
    for c in np.unique(labels):
        mask = labels == c
        sizes[mask] = mask.sum()
        if mask.sum() > 1:
            kc = min(k, mask.sum() - 1)
            dist, _ = cKDTree(x[mask]).query(x[mask], k=kc + 1, p=np.inf)
            radius[mask], k_own[mask] = dist[:, -1], kc
    keep = sizes > 1
    x, radius, k_own, sizes = x[keep], radius[keep], k_own[keep], sizes[keep]
    m = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1  # <= radius, self removed
    return digamma(len(x)) - digamma(sizes).mean() + digamma(k_own).mean() - digamma(m).mean()


def gaussian_mixture(n, means, priors, seed):
    """Labels ~ priors, x | c ~ N(means[c], I); returns x, labels and I(x; label) by Monte Carlo (200k draws)."""
    rng = np.random.default_rng(seed)
    means, priors = np.asarray(means, float), np.asarray(priors, float)

    def draw(m):
        c = rng.choice(len(priors), size=m, p=priors)
        return means[c] + rng.standard_normal((m, means.shape[1])), c

    x, labels = draw(n)
    xm, cm = draw(200_000)
    # log N(x; mu_c, I) up to the shared constant, for every class: (m, C)
    log_lik = -0.5 * ((xm[:, None, :] - means[None]) ** 2).sum(axis=2)
    log_marginal = logsumexp(log_lik + np.log(priors), axis=1)
    true = float(np.mean(log_lik[np.arange(len(cm)), cm] - log_marginal))
    return x, labels, true


def test_tiled_ross_equals_kdtree_reference():
    rng = np.random.default_rng(0)
    labels = np.concatenate([rng.integers(0, 4, 900), [7, 7, 9]])  # class 7 smaller than k, class 9 a singleton
    x = rng.standard_normal((len(labels), 3)) + labels[:, None] * 0.4
    (px,) = prepare_points([torch.from_numpy(x)], standardize_columns=True, jitter_scale=1e-5, seed=0,
                           precision="float32")
    ref = ross_reference(px.double().numpy(), labels, 4)
    value = ross_value(px, torch.from_numpy(labels), (4,), tile_elements=903 * 50)
    assert value == pytest.approx(ref, abs=1e-6)


def test_recovers_monte_carlo_mi_of_a_gaussian_mixture():
    x, labels, true = gaussian_mixture(3000, [[0, 0], [2, 0], [0, 2]], [0.5, 0.3, 0.2], seed=1)
    r = estimate(x, labels, "mixed_knn", k=5)
    assert r.kind == "estimate" and r.method == "mixed_knn"
    # sampling noise (3 stderr) plus 0.03 nats for the k-NN bias at n=3000 in 2 dims
    assert abs(r.value - true) <= 3 * r.stderr + 0.03, (r.value, true, r.stderr)
    assert r.ci[0] < r.value < r.ci[1]


def test_well_separated_classes_approach_label_entropy():
    x, labels, true = gaussian_mixture(2000, [[0.0], [12.0]], [0.5, 0.5], seed=2)
    assert true == pytest.approx(np.log(2), abs=1e-3)
    assert estimate(x, labels, "mixed_knn").value == pytest.approx(np.log(2), abs=0.03)


def test_independent_labels_give_about_zero():
    rng = np.random.default_rng(3)
    r = estimate(rng.standard_normal((2000, 2)), rng.integers(0, 5, 2000), "mixed_knn")
    assert abs(r.value) < 0.03 and r.ci[0] <= 0.0 <= r.ci[1]


def test_closer_classes_rank_lower():
    far, labels, _ = gaussian_mixture(1500, [[0, 0], [3, 0]], [0.5, 0.5], seed=4)
    near = far.copy()
    near[labels == 1, 0] -= 2.0  # class means 1 apart instead of 3
    assert estimate(far, labels, "mixed_knn").value > estimate(near, labels, "mixed_knn").value + 0.1


def test_float_labels_are_refused_even_when_integral():
    x, labels, _ = gaussian_mixture(300, [[0.0], [2.0]], [0.5, 0.5], seed=5)
    assert np.isfinite(estimate(x, labels, "mixed_knn").value)
    for floats in (labels.astype(np.float32), labels + 0.5):
        with pytest.raises(ValueError, match=r"y labels must be integers \(integer or bool dtype\), got torch.float"):
            estimate(x, floats, "mixed_knn")
    with pytest.raises(ValueError, match="y has a single class"):
        estimate(x, np.zeros(300, dtype=int), "mixed_knn")


def test_singleton_classes_are_left_out_with_a_note():
    x, labels, _ = gaussian_mixture(300, [[0.0], [2.0]], [0.5, 0.5], seed=6)
    labels[0] = 99
    r = estimate(x, labels, "mixed_knn")
    assert any("singleton" in note for note in r.notes)
    assert np.isfinite(r.value)


def test_all_singleton_classes_are_refused():
    x = np.random.default_rng(7).standard_normal((30, 2))
    with pytest.raises(ValueError, match="30 of 30 samples are alone in their class"):
        estimate(x, np.arange(30), "mixed_knn")
