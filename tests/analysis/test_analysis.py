import csv
import math
import shutil
from collections import OrderedDict

import pytest
import torch
import yaml
from torch import nn

from mi_analysis.analysis import (
    MI_COLUMNS,
    AnalysisConfig,
    analyze_model,
    analyze_run,
    boundary_points,
    collect_runs,
    select_points,
    settings_path,
)
from mi_analysis._util import threads as threads_policy
from mi_analysis.analysis import engine
from mi_analysis.analysis.comparisons import compare
from mi_analysis.analysis.samples import read_terms
from mi_analysis.analysis.table import FORMAT_1_COLUMNS, TABLE_FORMAT, row_key
from mi_analysis.analysis.reconstruction import MAX_TERM, RIDGE_GRID, _ridge_gcv, fit_decoder, gaussian_proxy
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.models import LocalNet
from mi_analysis.training import load_run, train

# A cheap but complete analysis: one probe weight decay (fast L-BFGS), every default quantity.
FAST = AnalysisConfig(estimator_params={"probe": {"weight_decays": (1e-1,)}}, device="cpu")
KINDS = {
    "probe_linear": "lower_bound",
    "mixed_knn": "estimate",
    "reconstruction_gaussian": "proxy",
    "reconstruction_mse": "non_shannon",
    "kde_upper": "upper_bound",
    "infonce": "lower_bound",
}
PROBE_SIZE = 100  # the run's whole test split


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """ResNet-20, K=3 with context E, on digits: 2 epochs, epoch 1 kept for analysis."""
    config = RunConfig(
        model=ModelConfig(arch="resnet20", num_modules=3, context="E"),
        data=DataConfig(dataset="digits", train_subset=200, test_subset=PROBE_SIZE, val_fraction=0.2),
        train=TrainConfig(epochs=2, batch_size=32, base_lr=0.4, warmup_epochs=0, progress=False, save_epochs=(1,)),
        out_dir=str(tmp_path_factory.mktemp("runs")),
    )
    return train(config)


@pytest.fixture(scope="module")
def full_table(run_dir, tmp_path_factory):
    """The default analysis of the last epoch: (rows returned, path of the table)."""
    path = tmp_path_factory.mktemp("full") / "mi.csv"
    return analyze_run(run_dir, FAST, out=path), path


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- analyze_run


def test_table_schema_points_and_kinds(run_dir, full_table):
    rows, path = full_table
    with open(path, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == MI_COLUMNS
    model, _ = load_run(run_dir)
    points = boundary_points(model)
    assert points[-1] == "s3.b2" and {"m1.in", "m2.in"} <= set(points) and len(points) == 5
    estimators = ["probe_linear", "mixed_knn", "reconstruction_gaussian", "reconstruction_mse", "kde_upper"]
    assert {(r["point"], r["estimator"]) for r in rows} == {(p, e) for p in points for e in estimators}
    assert len(read_rows(path)) == len(rows) == 25
    for row in rows:
        probe = model.tap(row["point"])
        assert (row["depth"], row["module"]) == (probe.depth, probe.module)
        assert (row["run"], row["mode"], row["K"], row["seed"], row["epoch"]) == (run_dir.name, "E", 3, 0, 2)
        assert row["kind"] == KINDS[row["estimator"]]
        assert row["quantity"] == ("I(h;y)" if row["estimator"] in ("probe_linear", "mixed_knn") else "I(h;x)")
        assert row["n"] == PROBE_SIZE
        assert row["ci_low"] - 1e-9 <= row["value"] <= row["ci_high"] + 1e-9


def test_values_respect_their_bounds(full_table):
    rows, _ = full_table
    by = {}
    for row in rows:
        by.setdefault(row["estimator"], []).append(row["value"])
    # H(y) - held-out CE can never exceed the entropy of 10 classes
    assert all(v <= math.log(10) for v in by["probe_linear"])
    assert all(0.0 <= v <= math.log(PROBE_SIZE) + 1e-9 for v in by["kde_upper"])  # capped at log N
    assert all(v >= 0.0 for v in by["reconstruction_gaussian"])
    assert all(v > 0.0 for v in by["reconstruction_mse"])
    # pixels of digits are on the 0..1 scale: an error above 1 per pixel would be no reconstruction at all
    assert all(v < 1.0 for v in by["reconstruction_mse"])


def test_settings_are_stored_beside_the_table(full_table):
    _, path = full_table
    assert settings_path(path) == path.with_name("analysis.yaml") and settings_path(path).is_file()
    other = path.with_name("other.csv")
    assert settings_path(other) == path.with_name("other.analysis.yaml")


def count_points_measured(monkeypatch):
    """A list that grows by one each time the engine starts measuring a point (reducing its h)."""
    calls, original = [], engine.reduce_point
    monkeypatch.setattr(engine, "reduce_point", lambda *a, **k: calls.append(1) or original(*a, **k))
    return calls


def test_resumption_skips_finished_rows_and_never_rewrites_them(run_dir, tmp_path, monkeypatch):
    calls = count_points_measured(monkeypatch)
    path = tmp_path / "mi.csv"
    y_only = FAST.replace(quantities=("y",), points=("s1.b2", "s3.b2"))
    first = analyze_run(run_dir, y_only, out=path)
    content, mtime = path.read_bytes(), path.stat().st_mtime_ns
    assert len(first) == 4 and len(calls) == 2

    again = analyze_run(run_dir, y_only, out=path)
    assert len(calls) == 2  # nothing recomputed
    assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime  # file not even rewritten
    assert sorted(map(str, again)) == sorted(map(str, first))

    both = analyze_run(run_dir, y_only.replace(quantities=("x", "y")), out=path)
    assert len(calls) == 4 and len(both) == 4 + 2 * 3  # x rows added: 2 points x 3 estimators
    assert path.read_bytes().startswith(content)  # the finished rows stay byte for byte


def test_an_interrupted_analysis_resumes_where_it_stopped(run_dir, tmp_path, monkeypatch):
    original = engine.reduce_point
    calls = []

    def crash_on_third_point(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    config = FAST.replace(quantities=("y",), y_estimators=("mixed_knn",))
    monkeypatch.setattr(engine, "reduce_point", crash_on_third_point)
    path = tmp_path / "mi.csv"
    with pytest.raises(KeyboardInterrupt):
        analyze_run(run_dir, config, out=path)
    assert [r["point"] for r in read_rows(path)] == ["s1.b2", "m1.in"]
    monkeypatch.setattr(engine, "reduce_point", original)
    calls = count_points_measured(monkeypatch)
    rows = analyze_run(run_dir, config, out=path)
    assert len(calls) == 3  # only the three points still missing
    assert [r["point"] for r in read_rows(path)] == ["s1.b2", "m1.in", "s2.b2", "m2.in", "s3.b2"]
    assert len(rows) == 5


def test_other_settings_into_the_same_table_are_refused(run_dir, full_table, tmp_path):
    _, path = full_table
    table = tmp_path / "mi.csv"
    shutil.copy(path, table)
    shutil.copy(settings_path(path), settings_path(table))
    before = table.read_bytes()
    with pytest.raises(ValueError, match=r"other analysis settings \(pca_dim: 64 in the table, 16 now\).*--out"):
        analyze_run(run_dir, FAST.replace(pca_dim=16), out=table)
    assert table.read_bytes() == before
    # a different selection (not a setting) may add to the same table
    rows = analyze_run(run_dir, FAST.replace(points=("s1.b0",), quantities=("y",), y_estimators=("mixed_knn",)),
                       out=table)  # fmt: skip
    assert [r["point"] for r in rows] == ["s1.b0"] and table.read_bytes().startswith(before)


def test_a_table_written_before_format_versions_still_resumes(run_dir, full_table, tmp_path, monkeypatch):
    """analysis.yaml of the first release: no format_version, the held-out size under its old key."""
    _, path = full_table
    table = tmp_path / "mi.csv"
    shutil.copy(path, table)
    stored = yaml.safe_load(settings_path(path).read_text())
    assert stored.pop("format_version") == TABLE_FORMAT
    stored = {("probe_size" if key == "held_out_size" else key): value for key, value in stored.items()}
    settings_path(table).write_text(yaml.safe_dump(stored, sort_keys=False))
    before = table.read_bytes()
    calls = count_points_measured(monkeypatch)
    with pytest.warns(DeprecationWarning, match="'probe_size' is now called 'held_out_size'"):
        rows = analyze_run(run_dir, FAST, out=table)
    assert calls == [] and table.read_bytes() == before  # every row found: nothing recomputed or rewritten
    assert sorted(map(str, rows)) == sorted(map(str, full_table[0]))


def test_per_sample_terms_beside_the_table_average_to_every_row_value(full_table):
    rows, path = full_table
    terms = read_terms(path)
    assert len({r["sample_set"] for r in read_rows(path)} - {""}) == 1
    with_terms = [r for r in read_rows(path) if row_key(r) in terms]
    assert {r["estimator"] for r in with_terms} >= {"probe_linear", "mixed_knn", "reconstruction_gaussian",
                                                    "reconstruction_mse"}
    assert len(with_terms) == len(terms)
    for row in with_terms:
        stored = terms[row_key(row)]
        assert len(stored.ids) == PROBE_SIZE and len(set(stored.ids.tolist())) == PROBE_SIZE
        assert stored.terms.mean() == pytest.approx(float(row["value"]), rel=1e-12, abs=1e-12), row["estimator"]
    assert not any(key[4] == "infonce" for key in terms)  # a trained critic is not a sample mean
    files = list((path.parent / "mi.samples").rglob("*.npz"))
    assert files and all(f.parent.name == rows[0]["run"] for f in files)


def test_a_format_1_table_is_read_compared_and_resumed_in_its_own_columns(run_dir, full_table, tmp_path):
    _, path = full_table
    table = tmp_path / "mi.csv"
    with open(path, newline="") as source, open(table, "w", newline="") as target:
        writer = csv.writer(target)
        for line in csv.reader(source):
            writer.writerow(line[: len(FORMAT_1_COLUMNS)])
    shutil.copy(settings_path(path), settings_path(table))
    rows = read_rows(table)
    assert "sample_set" not in rows[0] and len(rows) > 1
    with open(table, newline="") as source, open(tmp_path / "cut.csv", "w", newline="") as target:
        target.writelines(list(source)[:-1])  # the last row is missing: a resume recomputes it
    (tmp_path / "cut.csv").replace(table)
    analyze_run(run_dir, FAST, out=table)
    resumed = read_rows(table)
    assert len(resumed) == len(rows) and tuple(resumed[0]) == FORMAT_1_COLUMNS
    assert [r["value"] for r in resumed] == [r["value"] for r in rows]
    with pytest.raises(ValueError, match="no default pairs"):  # one mode (E): read, but nothing to pair
        compare([table])


def test_a_table_of_a_newer_format_is_refused(run_dir, full_table, tmp_path):
    _, path = full_table
    table = tmp_path / "mi.csv"
    shutil.copy(path, table)
    text = settings_path(path).read_text().replace(f"format_version: {TABLE_FORMAT}", "format_version: 99")
    settings_path(table).write_text(text)
    with pytest.raises(ValueError, match=f"format_version 99, but mi_analysis .* up to {TABLE_FORMAT}: upgrade"):
        analyze_run(run_dir, FAST, out=table)


def test_analysis_measures_the_models_own_taps(run_dir):
    model, _ = load_run(run_dir)
    taps = select_points(model, "boundaries")
    assert all(tap is model.tap(tap.name) for tap in taps)  # one tap type, no copies
    assert [tap.depth for tap in taps] == sorted(tap.depth for tap in taps)
    plain = nn.Sequential(OrderedDict(a=nn.Linear(2, 2), b=nn.ReLU()))
    assert [(t.name, t.depth, t.module, t.unit, t.where) for t in select_points(plain, ["b", "a"])] == [
        ("b", 0, 0, None, "output"), ("a", 1, 0, None, "output")]


def test_all_saved_epochs(run_dir, tmp_path):
    config = FAST.replace(points=("s3.b2",), quantities=("y",), y_estimators=("mixed_knn",))
    rows = analyze_run(run_dir, config, epochs="all", out=tmp_path / "mi.csv")
    assert sorted(r["epoch"] for r in rows) == [1, 2]
    assert rows[0]["value"] != rows[1]["value"]  # different weights, same probe set
    with pytest.raises(ValueError, match=r"epochs \[7\] have no checkpoint .* available epochs: \[1, 2\]"):
        analyze_run(run_dir, config, epochs=[7], out=tmp_path / "other.csv")


def test_bad_run_inputs_give_clear_errors(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ValueError, match="no config.yaml"):
        analyze_run(bare, FAST)
    shutil.copy(run_dir / "config.yaml", bare / "config.yaml")
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.pt"):
        analyze_run(bare, FAST)
    with pytest.raises(KeyError, match=r"unknown point\(s\) \['s9.b9'\].*'m1.in'.*'s3.b2'"):
        analyze_run(run_dir, FAST.replace(points=("s9.b9",)), out=tmp_path / "mi.csv")
    with pytest.raises(ValueError, match=f"held_out_size=5000 is larger than the {PROBE_SIZE} images"):
        analyze_run(run_dir, FAST.replace(held_out_size=5000), out=tmp_path / "mi.csv")
    assert not (tmp_path / "mi.csv").exists()


def test_collect_runs_summarises_metrics(run_dir):
    (summary,) = collect_runs(run_dir.parent)
    assert (summary["run"], summary["mode"], summary["K"], summary["seed"], summary["epochs"]) == (
        run_dir.name, "E", 3, 0, 2)  # fmt: skip
    assert 0.0 <= summary["test_acc"] <= 1.0 and 0.0 <= summary["test_acc_at_best_val"] <= 1.0
    assert summary["peak_memory_bytes"] > 0
    assert all(0.0 <= summary[f"acc_m{k}"] <= 1.0 for k in range(3)) and "acc_m3" not in summary


# ---------------------------------------------------------------- analyze_model


class Known(nn.Module):
    """x = [one-hot(y) (10), noise (10)]: `copy` reads the one-hot, `noise` the noise, `const` nothing."""

    def __init__(self):
        super().__init__()
        self.copy, self.noise, self.const = nn.Linear(20, 10), nn.Linear(20, 10), nn.Linear(20, 4)
        with torch.no_grad():
            for layer in (self.copy, self.noise, self.const):
                layer.weight.zero_()
                layer.bias.zero_()
            self.copy.weight[:, :10] = torch.eye(10)
            self.noise.weight[:, 10:] = torch.eye(10)
            self.const.bias.fill_(1.0)

    def forward(self, x):
        return self.copy(x) + self.noise(x) + self.const(x).sum(1, keepdim=True)


def known_data(n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.cat([nn.functional.one_hot(y, 10).float(), torch.randn(n, 10, generator=gen)], 1)
    return x, y


def test_known_construction_gives_known_information():
    x, y = known_data()
    # a weak L2 penalty lets the probe of the copy approach a cross-entropy of 0; a strong one suits noise
    config = FAST.replace(estimator_params={"probe": {"weight_decays": (1e-1, 1e-4)}})
    rows = analyze_model(Known(), (x, y), ["copy", "noise", "const"], config=config)
    value = {(r["point"], r["estimator"]): r["value"] for r in rows}
    h_y = math.log(10)  # balanced labels
    assert value[("copy", "probe_linear")] == pytest.approx(h_y, abs=0.1)
    assert value[("copy", "mixed_knn")] == pytest.approx(h_y, abs=0.3)
    for point in ("noise", "const"):
        assert abs(value[(point, "mixed_knn")]) < 0.15
        assert -0.4 < value[(point, "probe_linear")] < 0.1
    assert value[("const", "kde_upper")] == 0.0 and value[("const", "reconstruction_gaussian")] == 0.0
    # the noise point keeps the 10 noise inputs: far more about x than the label copy does
    assert value[("noise", "reconstruction_gaussian")] > value[("copy", "reconstruction_gaussian")] > 0
    assert value[("noise", "kde_upper")] > value[("copy", "kde_upper")]
    assert value[("copy", "kde_upper")] <= h_y + 0.05  # h takes 10 values: I(h + noise; sample) <= log 10
    assert {r["mode"] for r in rows} == {"E2E"} and {r["run"] for r in rows} == {"Known"}
    assert [r["depth"] for r in rows if r["estimator"] == "probe_linear"] == [0, 1, 2]


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def test_input_point_and_invertible_maps_keep_the_information(monkeypatch):
    """A LocalNet whose first unit passes the raw input x: an invertible rescaling of it keeps every
    quantity, the R0 module input "m1.in" is that same x, and multiplying by 0 leaves nothing."""
    units = OrderedDict(input=nn.Identity(), scaled=Scale(3.0), zeroed=Scale(0.0))
    head = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    net = LocalNet.from_units(units, (0,), head, input_shape=(1, 4, 4), num_classes=4, aux_head="0c1f")
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    x = torch.randn(400, 1, 4, 4, generator=gen) + 3 * nn.functional.one_hot(y, 16).float().view(400, 1, 4, 4)
    calls = count_points_measured(monkeypatch)
    rows = analyze_model(net, (x, y), "all", config=FAST.replace(pca_dim=8))
    assert len(calls) == 3  # "m1.in" holds exactly the activations of "input": its results are reused
    value = {(r["point"], r["estimator"]): r["value"] for r in rows}
    assert [r["point"] for r in rows if r["estimator"] == "mixed_knn"] == ["input", "m1.in", "scaled", "zeroed"]
    assert {(r["mode"], r["K"]) for r in rows} == {("R0", 2)}
    for estimator in ("probe_linear", "mixed_knn", "reconstruction_gaussian", "kde_upper"):
        assert value[("m1.in", estimator)] == value[("input", estimator)]
        assert value[("scaled", estimator)] == pytest.approx(value[("input", estimator)], abs=2e-3)
    assert value[("input", "probe_linear")] > 0.3
    assert abs(value[("zeroed", "mixed_knn")]) < 0.15 and value[("zeroed", "kde_upper")] == 0.0


def test_infonce_is_a_capped_lower_bound():
    x, y = known_data()
    critic = {"critic": {"batch_size": 32, "max_epochs": 3}}
    config = FAST.replace(quantities=("x",), x_estimators=("infonce",), estimator_params=critic)
    rows = analyze_model(Known(), (x, y), ["noise", "const"], config=config)
    value = {r["point"]: r["value"] for r in rows}
    assert {r["kind"] for r in rows} == {"lower_bound"}
    assert value["noise"] > value["const"] and value["noise"] <= math.log(32)
    assert abs(value["const"]) < 0.05  # a constant h: the critic cannot tell the pairs apart


class CountsThreads(Known):
    def forward(self, x):
        self.seen.append(torch.get_num_threads())
        return super().forward(x)


def test_analysis_captures_under_the_estimators_thread_policy(monkeypatch):
    """Capture, like every estimator, runs with "auto" threads: here the other processes take every
    core, so 1 thread, though the caller (or analyze --threads) set 2; the caller's count stays."""
    monkeypatch.setattr(threads_policy, "busy_elsewhere", lambda: 10**6)
    model, x, y = CountsThreads(), *known_data(80)
    model.seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        analyze_model(model, (x, y), ["copy"], config=FAST.replace(quantities=("y",), y_estimators=("mixed_knn",)))
        assert model.seen == [1, 1] and torch.get_num_threads() == 2  # the fitting and the held-out set
    finally:
        torch.set_num_threads(before)


def test_analyze_model_errors():
    x, y = known_data(60)
    with pytest.raises(ValueError, match=r"forward pass failed on the fitting set \(inputs of shape \(30, 20\)"):
        analyze_model(nn.Sequential(nn.Linear(7, 3)), (x, y), ["0"], config=FAST)
    with pytest.raises(ValueError, match=r"points='boundaries' needs a LocalNet.*\['copy', 'noise', 'const'\]"):
        analyze_model(Known(), (x, y), config=FAST)
    with pytest.raises(KeyError, match=r"unknown point\(s\) \['layer9'\].*valid names: \['copy', 'noise', 'const'\]"):
        analyze_model(Known(), (x, y), ["layer9"], config=FAST)
    with pytest.raises(ValueError, match="held_out_size=60 leaves none of the 60 samples"):
        analyze_model(Known(), (x, y), ["copy"], config=FAST.replace(held_out_size=60))
    with pytest.raises(ValueError, match="pass labels="):
        analyze_model(Known(), x, ["copy"], config=FAST)


def test_analyze_model_takes_a_loader_and_separate_fitting_data():
    x, y = known_data()
    loader = [(x[i : i + 50], y[i : i + 50]) for i in range(0, 200, 50)]
    rows = analyze_model(Known(), loader, ["copy"], fit_data=x[200:], config=FAST.replace(quantities=("y",)))
    assert {r["n"] for r in rows} == {200}


# ---------------------------------------------------------------- reconstruction


def test_gaussian_proxy_hand_computed():
    x = torch.tensor([[0.0, 0.0, 5.0], [2.0, 4.0, 5.0]], dtype=torch.float64)  # variances 1, 4, 0
    # dim 0: mse = var / e^2 -> 0.5 log(e^2) = 1; dim 1: worse than the mean -> 0; dim 2: constant, left out
    squared = torch.tensor([[math.exp(-2), 8.0, 1.0], [math.exp(-2), 8.0, 1.0]], dtype=torch.float64)
    assert gaussian_proxy(squared, x) == pytest.approx(1.0, abs=1e-12)
    assert gaussian_proxy(torch.zeros_like(squared), x) == pytest.approx(2 * MAX_TERM)  # perfect: capped


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_decoders_recover_a_linear_image_of_h(kind):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(400, 6, generator=gen)
    x = z @ torch.randn(6, 12, generator=gen) + 0.5
    decoder = fit_decoder(z[:300], x[:300], kind, seed=0)
    error = (decoder(z[300:]) - x[300:].double()).square().mean()
    assert error < 0.05 * x.var(0).mean()


@pytest.mark.parametrize("m, p", [(60, 8), (20, 30)])  # primal (p <= m) and dual (p > m) forms
def test_ridge_penalty_by_closed_form_gcv_matches_brute_force(m, p):
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(m, p, generator=gen, dtype=torch.float64)
    x = z[:, :2] @ torch.randn(2, 3, generator=gen, dtype=torch.float64)
    x = x + torch.randn(m, 3, generator=gen, dtype=torch.float64)
    x = x - x.mean(0)
    scale = float(torch.trace(z.T @ z)) / p
    candidates = []
    for relative in RIDGE_GRID:  # GCV(a) = m RSS / (m - tr H)^2 with explicit solves
        inverse = torch.linalg.inv(z.T @ z + relative * scale * torch.eye(p, dtype=torch.float64))
        weights, hat = inverse @ z.T @ x, z @ inverse @ z.T
        rss = float((z @ weights - x).square().sum())
        candidates.append((m * rss / (m - float(torch.trace(hat))) ** 2, weights))
    expected = min(candidates, key=lambda c: c[0])[1]
    assert torch.allclose(_ridge_gcv(z, x), expected, atol=1e-8)


def test_config_round_trip_and_validation(tmp_path):
    config = FAST.replace(points=("s1.b0", "m1.in"), quantities=("y",))
    assert config.quantities == ("I(h;y)",)
    assert AnalysisConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"y_estimators has unknown or unsuitable method\(s\) \['ksg'\]"):
        AnalysisConfig(y_estimators=("ksg",))  # ksg takes a continuous y, not labels
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['pca'\]"):
        AnalysisConfig.from_dict({"pca": 3})
    assert "points" not in config.settings() and config.settings()["pca_dim"] == 64


def test_the_earlier_name_of_held_out_size_still_works_everywhere():
    with pytest.warns(DeprecationWarning, match="'probe_size' is now called 'held_out_size'"):
        config = AnalysisConfig(probe_size=50)
    assert config.held_out_size == 50 and config == AnalysisConfig(held_out_size=50)
    with pytest.warns(DeprecationWarning, match="AnalysisConfig.probe_size is deprecated"):
        assert config.probe_size == 50  # read under the old name: the same value, never a silent default
    with pytest.warns(DeprecationWarning):
        assert AnalysisConfig.from_dict({"probe_size": 7}).held_out_size == 7
    with pytest.raises(ValueError, match="both 'probe_size' and its new name 'held_out_size'"), pytest.warns(DeprecationWarning):
        AnalysisConfig(probe_size=5, held_out_size=6)
    assert "probe_size" not in config.to_dict() and config.replace(seed=1).held_out_size == 50
