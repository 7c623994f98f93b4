import csv

import pytest
import yaml

from mi_analysis.analysis import MI_COLUMNS
from mi_analysis.cli import main
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.analysis.plots import read_table
from mi_analysis.training import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An E2E run (1 epoch) and a GLL run with K=2 (2 epochs, epoch 1 kept) of ResNet-20 on digits."""
    root = tmp_path_factory.mktemp("runs")
    data = DataConfig(dataset="digits", train_subset=160, test_subset=60, val_fraction=0.2)
    made = []
    for k, epochs in ((1, 1), (2, 2)):
        config = RunConfig(
            model=ModelConfig(arch="resnet20", num_modules=k, context="R0"), data=data,
            train=TrainConfig(epochs=epochs, batch_size=32, base_lr=0.4, warmup_epochs=0, progress=False,
                              save_epochs=(1,) if epochs == 2 else ()),
            out_dir=str(root),
        )  # fmt: skip
        made.append(train(config))
    return root, made


@pytest.fixture(scope="module")
def analysed(runs, tmp_path_factory):
    """Both runs analysed by the CLI with a fast config file (the GLL run at every saved epoch)."""
    root, (e2e, gll) = runs
    config = tmp_path_factory.mktemp("config") / "analysis.yaml"
    config.write_text(yaml.safe_dump({"probe_weight_decays": [0.1], "device": "cpu"}))
    fast = ["--config", str(config), "--y-estimators", "probe_linear", "--x-estimators", "reconstruction"]
    assert main(["analyze", str(e2e), "--points", "stem", "s2.b2", "s3.b2", *fast]) == 0
    assert main(["analyze", str(gll), "--epochs", "all", *fast]) == 0
    return root, e2e, gll


def test_analyze_writes_each_runs_table_and_settings(analysed):
    _, e2e, gll = analysed
    for run, points in ((e2e, {"stem", "s2.b2", "s3.b2"}), (gll, None)):
        rows = read_table(run / "mi.csv")
        assert tuple(rows[0]) == MI_COLUMNS
        assert {r["estimator"] for r in rows} == {"probe_linear", "reconstruction_gaussian", "reconstruction_mse"}
        if points:
            assert {r["point"] for r in rows} == points and {r["mode"] for r in rows} == {"E2E"}
        settings = yaml.safe_load((run / "analysis.yaml").read_text())
        assert settings["estimator_params"]["probe"]["weight_decays"] == [0.1] and "points" not in settings
    gll_rows = read_table(gll / "mi.csv")
    assert {r["epoch"] for r in gll_rows} == {"1", "2"} and {r["mode"] for r in gll_rows} == {"R0"}
    assert "m1.in" in {r["point"] for r in gll_rows}


def test_plot_writes_every_figure_from_a_runs_root(analysed, tmp_path, capsys):
    root, _, _ = analysed
    out = tmp_path / "figures"
    assert main(["plot", str(root), "--out", str(out)]) == 0
    stems = ["depth_Ihx_reconstruction_gaussian", "depth_Ihx_reconstruction_mse", "depth_Ihy_probe_linear",
             "information_depth", "plane_R0_K2", "accuracy_vs_k", "memory_vs_k", "local_accuracy"]  # fmt: skip
    for stem in stems:
        for suffix in (".png", ".pdf"):
            assert (out / (stem + suffix)).stat().st_size > 0, stem + suffix
    assert len(list(out.iterdir())) == 2 * len(stems)
    assert str(out / "information_depth.png") in capsys.readouterr().out


def test_plot_from_one_table(analysed, tmp_path):
    _, e2e, _ = analysed
    out = tmp_path / "figures"
    assert main(["plot", str(e2e / "mi.csv"), "--out", str(out)]) == 0
    assert (out / "information_depth.pdf").is_file() and not (out / "accuracy_vs_k.png").exists()


def test_compare_end_to_end_pairs_the_two_runs_and_plots_the_differences(analysed, tmp_path, capsys):
    """E2E (epoch 1: stem, s2.b2, s3.b2) against GLL (epochs 1 and 2 at its module boundaries, of which only
    s3.b2 is among E2E's points): both were measured on the same held-out digits, so s3.b2 at epoch 1 is
    paired; the rest are explicit gaps."""
    root, _, _ = analysed
    out = tmp_path / "comparisons.csv"
    assert main(["compare", str(root), "--out", str(out)]) == 0
    assert f"rows in {out}" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out)))
    assert {(r["a"], r["b"], r["K"]) for r in rows} == {("R0", "E2E", "2")}
    measured = [r for r in rows if r["diff"] != ""]
    assert {(r["epoch"], r["point"]) for r in measured} == {("1", "s3.b2")}
    assert all(r["paired"] == "true" and r["seeds"] == "1" and float(r["ci_low"]) <= float(r["diff"])
               <= float(r["ci_high"]) for r in measured)  # fmt: skip
    assert all(r["note"].startswith("no ") for r in rows if r["diff"] == "")
    figures = tmp_path / "figures"
    assert main(["plot", str(out), "--out", str(figures)]) == 0
    assert (figures / "differences.png").stat().st_size > 0
    assert main(["compare", str(root), "--pairs", "E:R0", "--out", str(out)]) == 2
    assert "mode(s) ['E'] that the tables do not hold" in capsys.readouterr().err


def test_cli_errors_are_clear(analysed, tmp_path, capsys):
    _, e2e, _ = analysed
    assert main(["analyze", str(e2e), "--points", "s9.b9", "--out", str(tmp_path / "mi.csv")]) == 2
    err = capsys.readouterr().err
    assert "unknown point(s) ['s9.b9']" in err and "'s1.b0'" in err
    assert main(["analyze", str(e2e), "--held-out-size", "1000", "--out", str(tmp_path / "mi.csv")]) == 2
    assert "held_out_size=1000 is larger than the 60 images" in capsys.readouterr().err
    # the flag's earlier name still works, and says it is deprecated
    assert main(["analyze", str(e2e), "--probe-size", "1000", "--out", str(tmp_path / "mi.csv")]) == 2
    err = capsys.readouterr().err
    assert "--probe-size is deprecated; use --held-out-size" in err and "held_out_size=1000 is larger" in err
    assert main(["analyze", str(e2e), "--epochs", "last"]) == 2
    assert "--epochs takes 'all' or epoch numbers" in capsys.readouterr().err
    assert main(["analyze", str(e2e), "--pca-dim", "8", "--points", "stem"]) == 2  # other settings, same table
    assert "--out" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "f")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_analyze_threads_flag_is_checked_and_sets_the_ceiling(tmp_path, capsys):
    import torch

    from mi_analysis import cli

    before = torch.get_num_threads()
    assert cli.main(["analyze", str(tmp_path), "--threads", "0"]) == 2
    assert "--threads must be" in capsys.readouterr().err
    try:
        assert cli.main(["analyze", str(tmp_path), "--threads", "1"]) == 2   # not a run directory
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
