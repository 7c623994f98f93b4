"""Analysis reads what estimators declare: parameters, pairing, summaries and figure ranks."""

import math
from collections import OrderedDict

import pytest
import torch
import yaml
from torch import nn

from mi_analysis.analysis import AnalysisConfig, MiTable, analyze_model, settings_path
from mi_analysis.analysis.figures import _preferred, make_figures
from mi_analysis.analysis.measure import method_params, row_spec
from mi_analysis.demo import _summary_estimators
from mi_analysis.estimators import AnalysisParam, MIResult, registry

# analysis.yaml as releases before estimator_params wrote it (the default settings)
OLD_SETTINGS = {
    "probe_size": None, "fit_size": 2000, "seed": 0, "pool": 4, "pca_dim": 64, "probe_folds": 3,
    "probe_weight_decays": [0.001], "knn_k": 3, "kde_sigma": 0.5, "infonce_batch_size": 128, "infonce_epochs": 30,
    "x_pca_dim": 64, "decoder": "linear",
}  # fmt: skip


def test_old_keys_map_onto_estimator_params_with_a_warning(tmp_path):
    path = tmp_path / "analysis.yaml"
    path.write_text(yaml.safe_dump({**OLD_SETTINGS, "knn_k": 5, "kde_sigma": 1, "device": "cpu"}))
    moved = r"kde_sigma -> estimator_params.kde.sigma, knn_k -> estimator_params.knn.k"
    with pytest.warns(DeprecationWarning, match=moved):
        old = AnalysisConfig.from_yaml(path)
    new = AnalysisConfig(device="cpu", estimator_params={"knn": {"k": 5}, "kde": {"sigma": 1.0}})
    assert old == new and old.settings() == new.settings()
    assert new.settings()["estimator_params"]["kde"] == {"sigma": 1.0}
    with pytest.warns(DeprecationWarning, match="infonce_epochs"):
        assert AnalysisConfig(infonce_epochs=7).estimator_params["critic"] == {"batch_size": 128, "max_epochs": 7}
    with pytest.warns(DeprecationWarning, match="probe_folds"):
        assert new.replace(probe_folds=4).estimator_params["probe"] == {"folds": 4, "weight_decays": (1e-3,)}
    with pytest.warns(DeprecationWarning, match=r"estimator_params\['knn'\]\['k'\]"):
        assert new.knn_k == 5
    # replace merges: other groups and names keep their values
    assert new.replace(estimator_params={"probe": {"folds": 5}}).estimator_params["knn"] == {"k": 5}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"knn": {"k": 0}}, r"estimator_params.knn.k must be an int >= 1, got 0"),
        ({"kde": {"sigma": math.inf}}, r"estimator_params.kde.sigma must be a positive number, got inf"),
        ({"probe": {"weight_decays": []}}, r"estimator_params.probe.weight_decays must be a non-empty list"),
        ({"knx": {"k": 1}}, r"unknown group\(s\) \['knx'\]; valid: \['critic', 'kde', 'knn', 'probe'\]"),
        ({"knn": {"kk": 1}}, r"estimator_params\['knn'\] has unknown name\(s\) \['kk'\]; valid: \['k'\]"),
        ({"knn": 3}, r"estimator_params must map groups to \{name: value\} mappings"),
    ],
)
def test_estimator_params_errors_name_the_setting(params, message):
    with pytest.raises(ValueError, match=message):
        AnalysisConfig(estimator_params=params)


def test_a_table_of_an_earlier_release_takes_new_rows_of_the_same_settings(tmp_path):
    table = tmp_path / "mi.csv"
    settings_path(table).write_text(yaml.safe_dump(OLD_SETTINGS))
    table.write_text("run,mode,K,seed,epoch,point,depth,module,quantity,estimator,kind,value,ci_low,ci_high,n\n"
                     "r,E2E,1,,0,a,0,0,I(h;y),probe_linear,lower_bound,0.5,0.4,0.6,10\n")  # fmt: skip
    with pytest.warns(DeprecationWarning):
        assert MiTable(table, AnalysisConfig()).done(("r", "0", "a", "I(h;y)", "probe_linear"))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match=r"estimator_params: .*'k': 3.*'k': 4"):
        MiTable(table, AnalysisConfig(estimator_params={"knn": {"k": 4}}))


def test_method_params_follow_the_registry_entries():
    config = AnalysisConfig(estimator_params={"probe": {"weight_decays": (0.1, 0.01)}, "kde": {"sigma": 0.25}})
    h = torch.tensor([[0.0, 1.0], [3.0, 1.0], [0.0, 5.0]], dtype=torch.float64)
    assert method_params("probe_linear", h, config) == {"folds": 3, "weight_decays": (0.1, 0.01)}
    assert method_params("probe_mlp", h, config) == {"folds": 3}
    assert method_params("ksg2", h, config) == {"k": 3}
    assert method_params("nwj", h, config) == {"batch_size": 128, "max_epochs": 30}
    assert method_params("gaussian", h, config) == {}
    spread = math.sqrt(float(h.var(0).sum()))
    assert method_params("kde_lower", h, config) == {"sigma": 0.25 * spread}


TOY_SCALE = AnalysisParam("toy", "scale", "scale", 2.0, "what the toy values are multiplied by", value_type="number")


def _toy_y(x, y, *, scale=1.0, seed=0):
    """scale x the number of dims of h: shows what analysis passed."""
    value = scale * x.shape[1]
    return MIResult(value, 0.0, (value, value), "estimate", "toy_y", {"scale": scale}, len(x))


def _toy_x(x, y, *, scale=1.0, seed=0):
    """scale when paired with the sample index, else 0."""
    value = scale * float(y.dim() == 1 and torch.equal(y.cpu(), torch.arange(len(y))))
    return MIResult(value, 0.0, (value, value), "upper_bound", "toy_x", {"scale": scale}, len(x))


def test_a_new_estimator_runs_through_analysis_and_figures_without_analysis_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register("toy_y", kind="estimate", y_type="labels", description="Toy: scale times the dims of h.",
                      summary="an estimate: a toy", analysis_params=(TOY_SCALE,), preference={"I(h;y)": -1})(_toy_y)
    registry.register("toy_x", kind="upper_bound", y_type="any", description="Toy: scale if paired with the index.",
                      summary="an upper bound: a toy", analysis_params=(TOY_SCALE,), x_pairing="sample_index")(_toy_x)
    model = nn.Sequential(OrderedDict(a=nn.Linear(6, 4), b=nn.ReLU()))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 6, generator=gen), torch.arange(120) % 3
    config = AnalysisConfig(device="cpu", y_estimators=("probe_linear", "toy_y"), x_estimators=("toy_x",),
                            estimator_params={"toy": {"scale": 3.0}})  # fmt: skip
    rows = analyze_model(model, (x, y), ["a", "b"], config=config)
    value = {(r["point"], r["estimator"]): r["value"] for r in rows}
    assert value[("a", "toy_y")] == 12.0 and value[("b", "toy_y")] == 12.0  # 3 x the 4 dims of h
    assert value[("a", "toy_x")] == 3.0  # paired with the sample index, as declared
    assert {r["kind"] for r in rows if r["estimator"] == "toy_x"} == {"upper_bound"}

    table = tmp_path / "mi.csv"
    MiTable(table, config).append(rows)
    stored = yaml.safe_load(settings_path(table).read_text())
    assert stored["estimator_params"]["toy"] == {"scale": 3.0}
    written = {p.name for p in make_figures([table], tmp_path / "figures")}
    assert {"depth_Ihy_toy_y.png", "depth_Ihx_toy_x.png", "information_depth.png"} <= written
    assert _preferred("I(h;y)", {"probe_linear", "toy_y"}) == "toy_y"  # rank -1 beats the probe's 0
    assert _preferred("I(h;x)", {"toy_x", "kde_upper"}) == "kde_upper"  # unranked after ranked
    assert _summary_estimators(rows) == [("I(h;y)", "toy_y"), ("I(h;y)", "probe_linear"), ("I(h;x)", "toy_x")]
    assert row_spec("toy_x").summary == "an upper bound: a toy" and row_spec("unknown") is None
