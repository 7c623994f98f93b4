"""The notebooks run end to end at the test scale and write what they say they write.

Each notebook is executed once (a kernel per notebook, cwd a temporary folder) with
MI_ANALYSIS_NOTEBOOK_SCALE=test; its last cell prints "RESULT {json}", which the tests read back
from the executed notebook and check against the files it wrote. The stored notebooks must carry
no outputs.
"""

import csv
import json
import math
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from mi_analysis.analysis import MI_COLUMNS, boundary_points  # noqa: E402
from mi_analysis.training.config import RunConfig  # noqa: E402
from mi_analysis.training.recipes import experiment  # noqa: E402
from mi_analysis.training import load_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_quickstart", "02_paper_figures", "03_your_architecture")
SCALE_LINE = 'SCALE = os.environ.get("MI_ANALYSIS_NOTEBOOK_SCALE", "full")'
CELL_TIMEOUT_S = 180  # per cell, generous for a loaded machine; the whole test scale takes about a minute
KINDS = {
    "probe_linear": "lower_bound",
    "mixed_knn": "estimate",
    "reconstruction_gaussian": "proxy",
    "reconstruction_mse": "non_shannon",
    "kde_upper": "upper_bound",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_notebook(name):
    return nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)


def execute(name, workdir):
    """(executed notebook, its RESULT dict) of notebook `name` run at the test scale in `workdir`."""
    notebook = read_notebook(name)
    with pytest.MonkeyPatch.context() as patch:  # the kernel inherits this environment
        patch.setenv("MI_ANALYSIS_NOTEBOOK_SCALE", "test")
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
        client = nbclient.NotebookClient(
            notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    last = [cell for cell in notebook.cells if cell.cell_type == "code"][-1]
    lines = [line for output in last.outputs if output.output_type == "stream" for line in output.text.splitlines()]
    results = [line.removeprefix("RESULT ") for line in lines if line.startswith("RESULT ")]
    assert len(results) == 1, f"the last cell of {name} must print one RESULT line, printed {lines}"
    return notebook, json.loads(results[0])


def images_shown(notebook):
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )  # fmt: skip


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_png(path):
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE, path


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quickstart")
    return (*execute("01_quickstart", workdir), workdir)


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("paper")
    return (*execute("02_paper_figures", workdir), workdir)


@pytest.fixture(scope="module")
def yours(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("yours")
    return (*execute("03_your_architecture", workdir), workdir)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_notebooks_carry_no_outputs(name):
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert SCALE_LINE in code[0].source
    sources = "\n".join(cell.source for cell in code)
    assert "plt.show" not in sources
    assert not [root for root in ("/work", "/tmp", "/home", "/root") if f'"{root}' in sources]  # relative paths only


def test_quickstart_writes_one_table_of_three_modes(quickstart):
    notebook, result, workdir = quickstart
    assert result["scale"] == "test" and result["mi_csv"].startswith("runs/notebooks/01_quickstart/")
    path = workdir / result["mi_csv"]
    with open(path, newline="") as handle:
        assert tuple(next(csv.reader(handle))) == MI_COLUMNS
    rows = read_rows(path)
    k = result["K"]
    assert {(r["mode"], r["K"]) for r in rows} == {("E2E", "1"), ("R0", str(k)), ("E", str(k))}
    assert {r["estimator"]: r["kind"] for r in rows} == KINDS == result["kinds"]
    # every run is measured at exactly its module boundaries, with every estimator
    runs = workdir / result["out"] / "runs"
    for run_dir in runs.iterdir():
        model, _ = load_run(run_dir)
        measured = {(r["point"], r["estimator"]) for r in rows if r["run"] == run_dir.name}
        assert measured == {(p, e) for p in boundary_points(model) for e in KINDS}, run_dir.name
    assert len(rows) == result["rows"]
    for r in rows:
        value, low, high, n = float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n"])
        assert low - 1e-9 <= value <= high + 1e-9
        if r["estimator"] == "probe_linear":
            assert value <= math.log(10)  # H(y) - cross-entropy <= H(y) <= ln 10
        if r["estimator"] == "kde_upper":
            assert 0 <= value <= math.log(n) + 1e-9


def test_quickstart_module_inputs_follow_the_context_mode(quickstart):
    """Under GLL (R0) the input of module k is the detached output of module k-1: the same numbers;
    under ContSup (E) the context encoder's output is added, so the input carries other numbers."""
    _, result, workdir = quickstart
    rows = read_rows(workdir / result["mi_csv"])
    value = {(r["mode"], r["point"], r["estimator"]): r["value"] for r in rows}
    depth = {(r["mode"], r["point"]): int(r["depth"]) for r in rows}
    inputs = sorted({p for m, p in depth if m == "R0" and p.endswith(".in")})
    assert len(inputs) == result["K"] - 1
    for mode in ("R0", "E"):
        for p in inputs:
            before = next(q for (m, q), d in depth.items() if m == mode and d == depth[(mode, p)] - 1)
            same = [value[(mode, p, e)] == value[(mode, before, e)] for e in KINDS]
            assert all(same) if mode == "R0" else not all(same), (mode, p, before)


def test_quickstart_figures(quickstart):
    notebook, result, workdir = quickstart
    stems = {Path(p).stem for p in result["figures"]}
    assert stems == {"information_depth", "depth_Ihx_kde_upper", "local_accuracy"}
    for p in result["figures"]:
        check_png(workdir / p)
        assert (workdir / p).with_suffix(".pdf").is_file()
    assert images_shown(notebook) == 3


def test_paper_notebook_trains_the_listed_experiment_runs(paper):
    _, result, workdir = paper
    quick = {c.model for name in ("baseline", "table4", "table2")
             for c in experiment(name, scale="quick", dataset="digits")}  # fmt: skip
    assert {(r["K"], r["context"]) for r in result["runs"]} == {(1, "R0"), (8, "R0"), (8, "E"), (2, "E")}
    for run in result["runs"]:
        run_dir = workdir / run["dir"]
        config = RunConfig.from_yaml(run_dir / "config.yaml")
        assert config.model in quick  # the experiment's model, unchanged
        assert (config.data.dataset, config.train.epochs, config.train.batch_size) == ("digits", 2, 64)
        assert (run_dir / "checkpoints" / "epoch_001.pt").is_file() and (run_dir / "final.json").is_file()


def test_paper_notebook_draws_every_figure(paper):
    notebook, result, workdir = paper
    rows = read_rows(workdir / result["mi_csv"])
    assert {(r["mode"], int(r["K"])) for r in rows} == {("E2E", 1), ("R0", 8), ("E", 8)}
    assert {int(r["epoch"]) for r in rows if r["mode"] == "E2E"} == {1, 2}  # every saved epoch: the plane
    assert {int(r["epoch"]) for r in rows if r["mode"] != "E2E"} == {2}
    depth = {f"depth_{q}_{e}" for e in KINDS for q in (("Ihy",) if e in ("probe_linear", "mixed_knn") else ("Ihx",))}
    expected = {"accuracy_vs_k", "memory_vs_k", "local_accuracy", "information_depth", "plane_E2E_K1", *depth}
    assert {Path(p).stem for p in result["figures"]} == expected
    for p in result["figures"]:
        check_png(workdir / p)
        assert (workdir / p).with_suffix(".pdf").is_file()
    assert images_shown(notebook) == len(expected) + 1  # and the local-head accuracy at one K


def test_your_architecture_notebook(yours):
    notebook, result, workdir = yours
    runs = result["runs"]
    assert set(runs) == {"resnet18 E2E", "resnet18 E", "cnn E2E", "cnn R0", "cnn E"}
    resnet_units = ["stem", *(f"layer{s}.{b}" for s in range(1, 5) for b in range(2))]
    for name in ("resnet18 E2E", "resnet18 E"):
        run = runs[name]
        assert run["arch"] == "torchvision:resnet18" and run["unit_names"] == resnet_units
        assert any("1 channel" in a for a in run["adapted"]) and any("stride 1" in a for a in run["adapted"])
    assert (runs["resnet18 E"]["num_modules"], runs["resnet18 E"]["cuts"]) == (4, [2, 4, 6])  # 9 units: 3+2+2+2
    assert runs["resnet18 E"]["boundary_points"] == ["layer1.1", "m1.in", "layer2.1", "m2.in", "layer3.1", "m3.in",
                                                      "layer4.1"]
    assert runs["resnet18 E2E"]["boundary_points"] == resnet_units
    blocks = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert runs["cnn E2E"] == {**runs["cnn E2E"], "num_modules": 1, "cuts": [], "unit_names": blocks,
                               "boundary_points": blocks, "modes_in_rows": [["E2E", 1]], "adapted": []}
    for mode in ("R0", "E"):
        run = runs[f"cnn {mode}"]
        assert (run["arch"], run["num_modules"], run["cuts"], run["context"]) == ("my_architecture:small_cnn", 4,
                                                                                   [1, 2, 3], mode)
        assert run["boundary_points"] == ["conv2", "m1.in", "conv3", "m2.in", "conv4", "m3.in", "conv5"]
        assert run["modes_in_rows"] == [[mode, 4]]
    for name, run in runs.items():
        assert run["kinds"] == KINDS and 0 <= run["test_acc"] <= 1, name
        config = RunConfig.from_yaml(workdir / run["run_dir"] / "config.yaml")
        assert config.model.arch == run["arch"] and ":" not in Path(run["run_dir"]).name
    assert result["any_module"]["points"] == ["conv1", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert result["any_module"]["rows"] == 6 * len(KINDS)
    assert result["any_module"]["n"] == [150]  # the test scale's digits test subset: every probe image
    assert result["probe_linear_max"] <= math.log(10)
    assert images_shown(notebook) == 4  # your CNN, ResNet-18, local heads, any module
