"""What registry entries declare for a per-layer analysis (EstimatorSpec fields)."""

import math

import pytest
import torch

from mi_analysis.estimators import AnalysisParam, MIResult, available, get, registry
from mi_analysis.estimators.registry import analysis_settings


def _fn(x, y, *, k=3, seed=0):
    return MIResult(0.0, 0.0, (0.0, 0.0), "estimate", "tmp", {}, len(x))


def test_every_entry_declares_a_one_line_summary_and_valid_settings():
    for name in available():
        spec = get(name)
        assert spec.summary and "\n" not in spec.summary and len(spec.summary) < 130, name
        assert spec.x_pairing in ("reduced_input", "sample_index")
    per_sample = {n for n in available() if get(n).per_sample}
    assert per_sample == {"probe_linear", "probe_mlp", "ksg", "ksg2", "mixed_knn", "kde_upper", "kde_lower"}
    assert {n for n in available() if get(n).x_pairing == "sample_index"} == {"kde_upper", "kde_lower"}
    settings = analysis_settings()
    assert {g: sorted(names) for g, names in settings.items()} == {
        "knn": ["k"], "probe": ["folds", "weight_decays"], "kde": ["sigma"], "critic": ["batch_size", "max_epochs"],
    }  # fmt: skip
    assert [p.setting for p in get("probe_mlp").analysis_params] == ["probe.folds"]  # its L2 grid stays its own
    assert get("ksg").analysis_params == get("mixed_knn").analysis_params == (settings["knn"]["k"],)


def test_settings_check_values_and_scale_with_h():
    sigma = analysis_settings()["kde"]["sigma"]
    h = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [2.0, 4.0]])
    spread = math.sqrt(4 / 3 + 16 / 3)  # sqrt of the summed unbiased column variances
    assert sigma.keyword_value(0.5, h) == pytest.approx(0.5 * spread, rel=1e-12)
    assert sigma.keyword_value(0.5, torch.zeros(4, 2)) == 0.5  # a constant h: the setting as is
    decays = analysis_settings()["probe"]["weight_decays"]
    assert decays.check([1, 0.1]) == (1.0, 0.1) and decays.keyword_value((0.1,), h) == (0.1,)
    with pytest.raises(ValueError, match=r"probe.folds must be an int >= 2, got 1"):
        analysis_settings()["probe"]["folds"].check(1)
    with pytest.raises(ValueError, match="scale must be one of"):
        AnalysisParam("g", "n", "k", 1, "d", scale="log")


def test_register_refuses_inconsistent_analysis_declarations(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    with pytest.raises(ValueError, match=r"analysis_params name keyword\(s\) \['sigma'\] that fn does not take"):
        registry.register("tmp", kind="estimate", y_type="any", description="d",
                          analysis_params=(AnalysisParam("tmp", "sigma", "sigma", 1.0, "d", value_type="number"),))(_fn)
    with pytest.raises(ValueError, match=r"analysis setting knn.k is already declared differently by"):
        registry.register("tmp", kind="estimate", y_type="any", description="d",
                          analysis_params=(AnalysisParam("knn", "k", "k", 5, "d"),))
    with pytest.raises(ValueError, match="x_pairing must be one of"):
        registry.register("tmp", kind="estimate", y_type="any", description="d", x_pairing="labels")
    registry.register("tmp", kind="estimate", y_type="any", description="a number",
                      analysis_params=(analysis_settings()["knn"]["k"],))(_fn)
    assert get("tmp").summary == "a number" and get("tmp").preference == {}
