"""Each local-learning rule through train -> analyze -> compare -> plot, on tiny digits runs."""
import csv

import pytest

from mi_analysis.analysis import AnalysisConfig, analyze_run
from mi_analysis.analysis.comparisons import compare
from mi_analysis.analysis.plots import plot_differences
from mi_analysis.training import train
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig

QUICK = AnalysisConfig(quantities=("I(h;y)",), y_estimators=("probe_linear",), x_estimators=(),
                       estimator_params={"probe": {"weight_decays": (1e-1,)}}, device="cpu")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """One table of 1-epoch ResNet-20 K=3 runs: gll, auglocal, man, all R0, one seed."""
    out = tmp_path_factory.mktemp("rules")
    path = out / "mi.csv"
    runs = {}
    for rule in ("gll", "auglocal", "man"):
        config = RunConfig(
            model=ModelConfig(arch="resnet20", num_modules=3, local_rule=rule),
            data=DataConfig(dataset="digits", train_subset=96, test_subset=60, val_fraction=0.0),
            train=TrainConfig(epochs=1, batch_size=32, base_lr=0.2, warmup_epochs=0, progress=False),
            out_dir=str(out / "runs"))
        runs[rule] = train(config)
        analyze_run(runs[rule], QUICK, out=path)
    return runs, path


def test_run_names_and_table_rows_carry_the_rule(table):
    runs, path = table
    assert "-auglocal-" in runs["auglocal"].name and "-man-" in runs["man"].name
    assert "-gll" not in runs["gll"].name  # names of plain GLL runs are as before
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(row["run"], row["rule"], row["mode"]) for row in rows} == {
        (runs[rule].name, rule, "R0") for rule in ("gll", "auglocal", "man")}


def test_compare_pairs_each_rule_with_gll_at_the_same_points(table, tmp_path):
    _, path = table
    rows = compare([path], out=tmp_path / "comparisons.csv")
    pairs = {(row["a"], row["rule_a"], row["b"], row["rule_b"]) for row in rows}
    assert pairs == {("R0", "auglocal", "R0", "gll"), ("R0", "man", "R0", "gll")}
    for row in rows:
        assert row["paired"] is True and row["K"] == 3 and row["ci_low"] <= row["diff"] <= row["ci_high"]
    points = {rule: [r["point"] for r in rows if r["rule_a"] == rule] for rule in ("auglocal", "man")}
    assert points["auglocal"] == points["man"] and len(points["man"]) == 5  # 3 module outputs, 2 inputs
    named = compare([path], pairs=["R0@man:R0@auglocal"])
    assert {(r["a"], r["rule_a"], r["b"], r["rule_b"]) for r in named} == {("R0", "man", "R0", "auglocal")}
    figure = plot_differences(tmp_path / "comparisons.csv")
    labels = {text.get_text() for text in figure.axes[0].get_legend().get_texts()}  # the I(h;y) panel
    assert labels == {"AugLocal (R0) - GLL", "MAN (R0) - GLL"}


def test_a_table_without_the_rule_column_reads_as_gll(table, tmp_path):
    runs, path = table
    old = tmp_path / "old.csv"
    with open(path, newline="") as source, open(old, "w", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        header = next(reader)
        writer.writerow(header[:-1])
        writer.writerows(line[:-1] for line in reader)
    with pytest.raises(ValueError, match="two runs of mode R0, K=3"):  # all three read as plain GLL
        compare([old], pairs=["R0:R0"])


def test_man_is_refused_under_module_parallel_and_seeds_are_averaged_per_rule():
    from mi_analysis.analysis.seeds import seed_table
    from mi_analysis.training.distributed.rank_trainer import check_setup
    config = RunConfig(model=ModelConfig(arch="resnet20", num_modules=4, local_rule="man"))
    for width in (1, 2):  # at width 1 too: the pipeline's step never updates the momentum copies
        with pytest.raises(ValueError, match="local_rule='man'.*--parallel data"):
            check_setup(config, "module", width)
    check_setup(config, "data", 2)
    row = {"mode": "R0", "K": 4, "epoch": 1, "point": "p", "quantity": "I(h;y)", "estimator": "probe_linear",
           "depth": 0, "module": 0, "kind": "lower_bound", "ci_low": 0.0, "ci_high": 0.2}
    rows = [{**row, "seed": s, "rule": rule, "value": v} for s in (0, 1) for rule, v in (("gll", 0.1), ("man", 0.5))]
    means = {r["rule"]: r["value"] for r in seed_table(rows)}
    assert means == pytest.approx({"gll": 0.1, "man": 0.5})
