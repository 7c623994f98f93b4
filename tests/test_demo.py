import csv
import dataclasses

import pytest

from mi_analysis.data import fashion_mnist_subset
from mi_analysis.demo import DEMO_MODES, DemoSettings, boundary_table, data_source, demo_configs, run_demo

# the default data set, shrunk: 8x8 images, 120 training images, 150 held out, two seeds, one more rule
TINY = DemoSettings(arch="resnet20", num_modules=3, epochs=1, image_size=8, train_subset=120, held_out_size=150,
                    seeds=(0, 1), rules=("man",))


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    run_demo(TINY, out)
    return out


def test_demo_writes_table_figures_and_summary(demo_dir):
    rows = list(csv.DictReader(open(demo_dir / "mi.csv")))
    assert {r["mode"] for r in rows} == set(DEMO_MODES)
    assert {r["quantity"] for r in rows} == {"I(h;x)", "I(h;y)"}
    assert {(r["estimator"], r["kind"]) for r in rows} >= {("probe_linear", "lower_bound"),
                                                            ("reconstruction_gaussian", "proxy")}
    for name in ("information_depth", "local_accuracy", "accuracy_vs_k"):
        assert (demo_dir / "figures" / f"{name}.png").stat().st_size > 0
        assert (demo_dir / "figures" / f"{name}.pdf").stat().st_size > 0
    summary = (demo_dir / "summary.md").read_text()
    assert "## I(h;y), probe_linear (lower_bound)" in summary and "## I(h;x), reconstruction_gaussian (proxy)" in summary
    assert "| after module 1 |" in summary and "GLL - E2E" in summary
    assert f"Data: {data_source(TINY)}" in summary and "seeds 0, 1" in summary


def test_every_mode_is_trained_once_per_seed_into_one_table(demo_dir):
    rows = list(csv.DictReader(open(demo_dir / "mi.csv")))
    assert {(r["mode"], r["rule"], r["seed"]) for r in rows} == {
        (m, "gll", s) for m in DEMO_MODES for s in ("0", "1")} | {("R0", "man", "0"), ("R0", "man", "1")}
    assert len({r["run"] for r in rows}) == 2 * len(TINY.labels) == 2 * 5
    summary = (demo_dir / "summary.md").read_text()
    assert "| train E2E seed 1 |" in summary and "| R1E | 1 | 3 |" in summary  # wall times and accuracy per seed


def test_the_data_source_is_named(monkeypatch, tmp_path):
    system = fashion_mnist_subset.SYSTEM_DIR
    if system.is_dir():  # Debian's dataset-fashion-mnist is installed here
        assert f"read from the full IDX files in {system}" in data_source(DemoSettings(root=str(tmp_path)))
    monkeypatch.setattr(fashion_mnist_subset, "SYSTEM_DIR", tmp_path / "absent")
    assert "read from the copy bundled with mi_analysis" in data_source(DemoSettings(root=str(tmp_path)))
    assert "the first 6,000 training and 2,000 test images" in data_source(DemoSettings(root=str(tmp_path)))
    assert data_source(DemoSettings(dataset="digits", root="r")) == "digits (root r)"


@pytest.mark.parametrize("seeds", [(), (0, 0), (-1,), "0"])
def test_demo_seeds_are_checked_by_name(seeds):
    with pytest.raises(ValueError, match="seeds"):
        DemoSettings(seeds=seeds)


def test_demo_refuses_a_folder_that_holds_an_earlier_demo(demo_dir):
    before = (demo_dir / "mi.csv").read_bytes()
    with pytest.raises(ValueError, match="already holds files"):
        run_demo(DemoSettings(epochs=1), demo_dir)
    assert (demo_dir / "mi.csv").read_bytes() == before


def test_module_zero_is_identical_across_local_modes(demo_dir):
    """Module 0 is gradient-isolated and sees the same data in the same order in R0, E and R1E,
    so every quantity at the first boundary must agree exactly: a check of isolation end to end."""
    rows = list(csv.DictReader(open(demo_dir / "mi.csv")))
    first = [r for r in rows if r["module"] == "0" and r["mode"] in ("R0", "E", "R1E") and r["rule"] == "gll"
             and r["seed"] == "0"]
    by_estimator = {}
    for r in first:
        by_estimator.setdefault(r["estimator"], set()).add(r["value"])
    assert by_estimator and all(len(values) == 1 for values in by_estimator.values()), by_estimator


def test_boundary_table_known_values():
    def row(mode, value, half):
        return {"mode": mode, "K": 1 if mode == "E2E" else 3, "point": "u", "quantity": "I(h;y)", "estimator": "p",
                "value": value, "ci_low": value - half, "ci_high": value + half}

    rows = [row("E2E", 2.0, 0.1), row("R0", 1.0, 0.1), row("E", 1.5, 0.1), row("R1E", 2.0, 0.1)]
    line = boundary_table(rows, ["u"], "I(h;y)", "p").splitlines()[-1]
    assert line == "| after module 0 | u | 2.000 [1.900, 2.100] | 1.000 [0.900, 1.100] | 1.500 [1.400, 1.600] | " \
                   "2.000 [1.900, 2.100] |"


def test_rules_add_r0_runs_under_each_rule_with_everything_else_shared(tmp_path):
    settings = DemoSettings(rules=["man", "auglocal"])
    assert settings.rules == ("man", "auglocal")
    assert settings.labels == DEMO_MODES + ("R0@man", "R0@auglocal")
    configs = demo_configs(settings, tmp_path)
    assert set(configs) == {(label, 0) for label in settings.labels}
    r0, man = configs["R0", 0], configs["R0@man", 0]
    assert man.model.local_rule == "man" and man.model.label == "R0@man"
    assert dataclasses.replace(man.model, local_rule="gll") == r0.model
    assert (man.data, man.train) == (r0.data, r0.train)


@pytest.mark.parametrize("rules", [("gll",), ("man", "man"), ("hebbian",), "man"])
def test_demo_rules_are_checked_by_name(rules):
    with pytest.raises(ValueError, match="rules must be distinct names from"):
        DemoSettings(rules=rules)


def test_boundary_table_has_a_column_per_rule():
    rows = [{"mode": "R0", "K": 3, "rule": rule, "point": "u", "quantity": "I(h;y)", "estimator": "p",
             "value": value, "ci_low": value - 0.1, "ci_high": value + 0.1}
            for rule, value in (("gll", 1.0), ("man", 1.25))]
    table = boundary_table(rows, ["u"], "I(h;y)", "p", ("R0", "R0@man", "R0@auglocal"))
    head, _, line = table.splitlines()
    assert head == "| boundary | unit | R0 | R0@man | R0@auglocal |"
    assert line == "| after module 0 | u | 1.000 [0.900, 1.100] | 1.250 [1.150, 1.350] | - |"


def test_demo_writes_paired_comparisons(demo_dir):
    rows = list(csv.DictReader(open(demo_dir / "comparisons.csv")))
    pairs = {(r["a"], r["rule_a"], r["b"], r["rule_b"]) for r in rows}
    assert pairs == {("R0", "gll", "E2E", "gll"), ("E", "gll", "R0", "gll"), ("R1E", "gll", "R0", "gll"),
                     ("R0", "man", "R0", "gll")}
    probe = [r for r in rows if r["estimator"] == "probe_linear" and r["diff"] != ""]
    assert probe and all(r["paired"] == "true" for r in probe)
    summary = (demo_dir / "summary.md").read_text()
    assert "## Paired comparisons" in summary and "p_holm" in summary
    assert (demo_dir / "figures" / "differences.png").stat().st_size > 0
