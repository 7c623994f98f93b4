"""Standard errors by subsampling and bootstrap, and the permutation test."""

import math

import numpy as np
import pytest
import torch

from mi_analysis.estimators.uncertainty import (
    bootstrap,
    ci_from_stderr,
    permutation_pvalue,
    subsample_result,
    subsample_stderr,
)



def test_subsampling_interval_covers_the_truth_about_95_percent():
    # the sample mean has Var = 1/n; the m-subsample rule must give intervals with ~95% coverage
    gen = torch.Generator().manual_seed(0)
    covered, ratios = 0, []
    for trial in range(300):
        data = torch.randn(1000, generator=gen, dtype=torch.float64)
        r = subsample_result(lambda rows: float((data if rows is None else data[rows]).mean()), 1000,
                             kind="estimate", method="mean", params={}, seed=trial)
        covered += r.ci[0] <= 0.0 <= r.ci[1]
        ratios.append(r.stderr * math.sqrt(1000))
    assert 0.90 <= covered / 300 <= 0.99
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.1)


def test_subsamples_are_disjoint_and_of_equal_size():
    seen = []
    subsample_stderr(lambda rows: seen.append(rows) or 0.0, 103, 4, seed=1)
    rows = torch.cat(seen)
    assert [len(s) for s in seen] == [25] * 4 and rows.unique().numel() == 100


def test_too_few_samples_give_nan_with_a_note():
    r = subsample_result(lambda rows: 0.5, 30, kind="estimate", method="m", params={}, seed=0, min_subset_size=20)
    assert math.isnan(r.stderr) and all(math.isnan(c) for c in r.ci)
    assert "too small" in r.notes[0] and r.value == 0.5


def test_student_t_interval_is_wider_than_normal():
    assert ci_from_stderr(1.0, 0.1) == pytest.approx((1.0 - 0.196, 1.0 + 0.196), abs=1e-3)
    low, high = ci_from_stderr(1.0, 0.1, dof=4)
    assert high - 1.0 == pytest.approx(2.776 * 0.1, abs=1e-3)


def test_bootstrap_of_a_mean_matches_the_textbook_stderr():
    terms = torch.randn(2000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    stderr, (low, high) = bootstrap(terms, seed=3)
    assert stderr == pytest.approx(float(terms.std()) / math.sqrt(2000), rel=0.1)
    assert low < float(terms.mean()) < high


def test_bootstrap_resamples_several_tensors_with_the_same_rows():
    a = torch.arange(50, dtype=torch.float64)
    stderr, _ = bootstrap((a, -a), lambda u, v: (u + v).abs().max(), num_resamples=50)
    assert stderr == 0.0  # u + v is 0 only when both got the same rows
    with pytest.raises(ValueError, match="share their first dimension"):
        bootstrap((a, a[:10]), lambda u, v: u.mean())


def test_permutation_p_value_counts_the_observed_pairing():
    assert permutation_pvalue(lambda perm: 0.0, 10, observed=1.0, num_permutations=19, seed=0) == pytest.approx(0.05)
    assert permutation_pvalue(lambda perm: 1.0, 10, observed=1.0, num_permutations=19, seed=0) == 1.0
