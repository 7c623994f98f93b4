import csv

import pytest

from mi_analysis.data import fashion_mnist_subset
from mi_analysis.demo import DEMO_MODES, DemoSettings, boundary_table, data_source, run_demo

# the default data set, shrunk: 8x8 images, 120 training images, 150 held out, two seeds
TINY = DemoSettings(arch="resnet20", num_modules=3, epochs=1, image_size=8, train_subset=120, held_out_size=150,
                    seeds=(0, 1))


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
    assert {(r["mode"], r["seed"]) for r in rows} == {(m, s) for m in DEMO_MODES for s in ("0", "1")}
    assert len({r["run"] for r in rows}) == 2 * len(DEMO_MODES)
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
    first = [r for r in rows if r["module"] == "0" and r["mode"] in ("R0", "E", "R1E") and r["seed"] == "0"]
    by_estimator = {}
    for r in first:
        by_estimator.setdefault(r["estimator"], set()).add(r["value"])
    assert by_estimator and all(len(values) == 1 for values in by_estimator.values()), by_estimator


def test_boundary_table_known_values():
    def row(mode, value, half):
        return {"mode": mode, "point": "u", "quantity": "I(h;y)", "estimator": "p",
                "value": value, "ci_low": value - half, "ci_high": value + half}

    rows = [row("E2E", 2.0, 0.1), row("R0", 1.0, 0.1), row("E", 1.5, 0.1), row("R1E", 2.0, 0.1)]
    line = boundary_table(rows, ["u"], "I(h;y)", "p").splitlines()[-1]
    assert line == "| after module 0 | u | 2.000 [1.900, 2.100] | 1.000 [0.900, 1.100] | 1.500 [1.400, 1.600] | " \
                   "2.000 [1.900, 2.100] |"


def test_demo_writes_paired_comparisons(demo_dir):
    rows = list(csv.DictReader(open(demo_dir / "comparisons.csv")))
    pairs = {(r["a"], r["b"]) for r in rows}
    assert pairs == {("R0", "E2E"), ("E", "R0"), ("R1E", "R0")}
    probe = [r for r in rows if r["estimator"] == "probe_linear" and r["diff"] != ""]
    assert probe and all(r["paired"] == "true" for r in probe)
    summary = (demo_dir / "summary.md").read_text()
    assert "## Paired comparisons" in summary and "p_holm" in summary
    assert (demo_dir / "figures" / "differences.png").stat().st_size > 0
