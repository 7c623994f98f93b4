"""estimate(), the registry and the properties every registered estimator of this package shares."""

import math

import numpy as np
import pytest
import torch

from mi_analysis.estimators import KINDS, MIResult, available, estimate, get, registry


# method -> y kind it needs; the neural / probe / auto estimators are tested in their own files
CLOSED_FORM_AND_KNN = {
    "ksg": "continuous", "ksg2": "continuous", "gaussian": "continuous", "mixed_knn": "labels",
    "kde_upper": "labels", "kde_lower": "labels", "binning": "labels", "renyi": "labels",
}


def sample(y_kind, n=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 2)) + labels[:, None]
    y = x + rng.standard_normal((n, 2)) if y_kind == "continuous" else labels
    return x, y


def test_available_is_sorted_and_lists_every_family():
    names = available()
    assert names == sorted(names) and set(CLOSED_FORM_AND_KNN) <= set(names)
    assert all(get(name).kind in KINDS and get(name).description for name in names)


@pytest.mark.parametrize("method", sorted(CLOSED_FORM_AND_KNN))
def test_every_method_reports_kind_stderr_and_ci(method):
    x, y = sample(CLOSED_FORM_AND_KNN[method])
    r = estimate(x, y, method)
    assert isinstance(r, MIResult) and r.method == method and r.kind == get(method).kind and r.n == 400
    assert math.isfinite(r.value) and r.stderr > 0 and r.ci[0] <= r.value <= r.ci[1]
    assert r.params["seed"] == 0 and r.params["ci_subsets"] == 10


@pytest.mark.parametrize("method", ["ksg", "mixed_knn", "gaussian"])
def test_numpy_and_torch_inputs_agree(method):
    x, y = sample(CLOSED_FORM_AND_KNN[method])
    as_numpy = estimate(x, y, method)
    as_torch = estimate(torch.from_numpy(x).float(), torch.from_numpy(y), method)
    assert as_torch.value == pytest.approx(as_numpy.value, abs=1e-6)


def test_same_seed_same_result_other_seed_other_jitter():
    x, y = sample("continuous")
    assert estimate(x, y, "ksg", seed=4) == estimate(x, y, "ksg", seed=4)
    assert estimate(x, y, "ksg", seed=5).params["seed"] == 5


def test_unknown_method_and_parameters():
    x, y = sample("continuous", n=50)
    with pytest.raises(ValueError, match=r"unknown estimator method 'kgs'; valid names: \[.*'ksg'"):
        estimate(x, y, "kgs")
    with pytest.raises(TypeError, match=r"method 'ksg' got unknown parameter\(s\) \['kk'\]; accepted: \[.*'k'"):
        estimate(x, y, "ksg", kk=3)
    with pytest.raises(ValueError, match="permutation_test must be a non-negative int"):
        estimate(x, y, "ksg", permutation_test=-1)


def test_permutation_test_fills_p_value():
    x, y = sample("continuous", n=300)
    dependent = estimate(x, y, "gaussian", permutation_test=19)
    assert dependent.p_value == pytest.approx(1 / 20) and dependent.params["permutation_test"] == 19
    rng = np.random.default_rng(1)
    independent = estimate(x, rng.standard_normal((300, 2)), "gaussian", permutation_test=19)
    assert independent.p_value > 0.1
    assert estimate(x, y, "gaussian").p_value is None


def test_registry_refuses_bad_entries(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    def fn(x, y):
        return MIResult(0.0, 0.0, (0.0, 0.0), "estimate", "tmp", {}, len(x))

    with pytest.raises(ValueError, match="kind must be one of"):
        registry.register("tmp", kind="guess", y_type="any", description="d")
    with pytest.raises(ValueError, match="y_type must be one of"):
        registry.register("tmp", kind="estimate", y_type="images", description="d")
    with pytest.raises(ValueError, match="already registered by mi_analysis.estimators.ksg.ksg"):
        registry.register("ksg", kind="estimate", y_type="any", description="d")(fn)
    registry.register("tmp", kind="estimate", y_type="any", description="d")(fn)
    assert "tmp" in available() and estimate([1.0, 2.0], [0, 1], "tmp").value == 0.0
