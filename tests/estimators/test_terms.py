"""Per-sample terms (MIResult.terms): every estimator that is a sample mean returns them, their mean is the
value, and estimators that are not sample means say so."""

import pytest
import torch

from mi_analysis.estimators import available, estimate, get


KDE_SIGMA = {"kde_upper": {"sigma": 2.0}, "kde_lower": {"sigma": 0.1}}


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(240, 3, generator=gen, dtype=torch.float64)
    labels = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0.5).long()
    y = x[:, :1] + 0.7 * torch.randn(240, 1, generator=gen, dtype=torch.float64)
    return x, labels, y


def test_per_sample_estimators_return_terms_whose_mean_is_the_value(data):
    x, labels, y = data
    per_sample = [name for name in available() if get(name).per_sample]
    assert set(per_sample) >= {"probe_linear", "probe_mlp", "ksg", "ksg2", "mixed_knn", "kde_upper", "kde_lower"}
    for name in per_sample:
        spec = get(name)
        target = labels if spec.y_type in ("labels", "any") else y
        result = estimate(x, target, name, **KDE_SIGMA.get(name, {}))  # noise where neither bound is clipped
        assert result.terms is not None, name
        assert result.terms.shape == (240,) and result.terms.dtype == torch.float64
        assert float(result.terms.mean()) == pytest.approx(result.value, rel=1e-12, abs=1e-12), name


def test_estimators_that_are_not_sample_means_have_no_terms(data):
    x, _, y = data
    assert not get("gaussian").per_sample
    assert estimate(x, y, "gaussian").terms is None


def test_a_clipped_kde_bound_has_no_terms():
    """With tiny noise every sample is its own cluster: the upper bound hits its cap H(y) and is clipped there,
    so the value is no longer the mean of the terms."""
    x = torch.arange(40, dtype=torch.float64)[:, None]
    labels = torch.arange(40) % 2
    result = estimate(x, labels, "kde_upper", sigma=1e-3)
    assert result.value == pytest.approx(0.6931471805599453) and result.terms is None


def test_terms_convert_to_bits_with_the_value(data):
    x, labels, _ = data
    result = estimate(x, labels, "probe_linear").to_bits()
    assert float(result.terms.mean()) == pytest.approx(result.value, rel=1e-12)
