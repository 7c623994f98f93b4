"""Architectures from anywhere through the whole pipeline: a user's factory and torchvision models
train into ordinary run directories (config, checkpoints, resume), analyse at every module
boundary, plot, describe and reload; a factory that cannot be imported any more is a clear error."""

import json
import sys
import textwrap

import pytest
import yaml

from mi_analysis.analysis import analyze_run, boundary_points
from mi_analysis.analysis.plots import read_table
from mi_analysis.analysis.settings import AnalysisConfig
from mi_analysis.cli import main
from mi_analysis.training import load_run
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.training import train

FACTORY = textwrap.dedent('''
    from collections import OrderedDict

    from torch import nn


    def block(c_in, c_out, stride=1):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU())


    def small_cnn(*, num_classes, in_channels, image_size):
        units = OrderedDict(conv1=block(in_channels, 8), conv2=block(8, 16, 2), conv3=block(16, 16))
        return units, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


    def ready_net(*, num_classes, in_channels, image_size):
        from mi_analysis.models import LocalNet

        units, head = small_cnn(num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        return LocalNet.from_units(units, [0, 1], head, input_shape=(in_channels, image_size, image_size),
                                   num_classes=num_classes, context="E", aux_head="0c1f")
''')
TINY = ["--dataset", "digits", "--train-subset", "60", "--test-subset", "40", "--epochs", "1", "--batch-size", "20",
        "--no-progress"]
FAST_ANALYSIS = ["--y-estimators", "probe_linear", "--x-estimators", "reconstruction", "--held-out-size", "40",
                 "--fit-size", "48"]


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "my_archs.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(folder))
    yield "my_archs:small_cnn"
    sys.modules.pop("my_archs", None)


def test_a_user_factory_through_train_resume_analyze_plot_describe(factory_module, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    assert main(["train", "--arch", factory_module, "-K", "2", "--context", "E", *TINY, "--out-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("digits-my_archs.small_cnn-K2-E-") and ":" not in run.name
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["arch"] == factory_module
    assert main(["train", "--resume", str(run)]) == 2  # already complete: said, not a traceback
    assert "already complete" in capsys.readouterr().err

    assert main(["analyze", str(run), *FAST_ANALYSIS]) == 0
    rows = read_table(run / "mi.csv")
    model, _ = load_run(run)
    points = boundary_points(model)
    assert points == ["conv2", "m1.in", "conv3"]
    for quantity in ("I(h;x)", "I(h;y)"):
        assert {r["point"] for r in rows if r["quantity"] == quantity} == set(points)
    assert {(r["mode"], r["K"]) for r in rows} == {("E", "2")}

    assert main(["plot", str(runs), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "information_depth.png").stat().st_size > 0

    capsys.readouterr()
    assert main(["describe", "--arch", factory_module, "-K", "2", "--dataset", "digits", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["cut_labels"] == ["conv2"] and described["forward_flops_per_image"] > 0
    # conv (weights + bias) and BatchNorm (2 x channels) of each block, then Linear(16 -> 10)
    convs = (1 * 8 * 9 + 8 + 16) + (8 * 16 * 9 + 16 + 32) + (16 * 16 * 9 + 16 + 32)
    assert described["parameter_counts"]["backbone"] == convs + 16 * 10 + 10 == 3818

    monkeypatch.setattr(sys, "path", [p for p in sys.path if "user_code" not in p])
    sys.modules.pop("my_archs")
    with pytest.raises(ValueError, match=r"arch='my_archs:small_cnn': cannot import module 'my_archs'"):
        load_run(run)
    assert main(["analyze", str(run), *FAST_ANALYSIS, "--out", str(tmp_path / "other.csv")]) == 2
    assert "cannot import module 'my_archs'" in capsys.readouterr().err


def test_a_factorys_localnet_trains_and_its_run_records_what_it_fixes(factory_module, tmp_path, capsys):
    arch, runs = "my_archs:ready_net", tmp_path / "runs"
    assert main(["train", "--arch", arch, *TINY, "--out-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    assert run.name.startswith("digits-my_archs.ready_net-K3-E-")
    model = RunConfig.from_yaml(run / "config.yaml").model
    assert (model.arch, model.num_modules, model.context, model.aux_head) == (arch, 3, "E", "0c1f")
    assert main(["train", "--arch", arch, "-K", "2", *TINY, "--out-dir", str(runs)]) == 2
    assert "fixes its own num_modules=3; num_modules (-K)=2 conflicts" in capsys.readouterr().err
    assert len(list(runs.iterdir())) == 1  # refused before a run directory was made
    assert main(["analyze", str(run), *FAST_ANALYSIS]) == 0
    assert {(r["mode"], r["K"]) for r in read_table(run / "mi.csv")} == {("E", "3")}


@pytest.mark.slow
def test_a_vit_factory_trains_analyses_every_boundary_and_plots_from_the_cli(tmp_path, tiny_vit):
    runs = tmp_path / "runs"
    assert main(["train", "--arch", tiny_vit, "-K", "3", "--context", "E", *TINY, "--out-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    assert main(["analyze", str(run), *FAST_ANALYSIS, "--tokens", "mean"]) == 0
    model, _ = load_run(run)
    points = boundary_points(model)
    assert points == ["block0", "m1.in", "block2", "m2.in", "block3"]  # units: embed, block0..block3
    rows = read_table(run / "mi.csv")
    for quantity in ("I(h;x)", "I(h;y)"):
        assert {r["point"] for r in rows if r["quantity"] == quantity} == set(points)
    assert all(r["notes"].startswith("tokens 17x32 reduced to the mean token (tokens=mean)") for r in rows)
    assert {(r["mode"], r["K"]) for r in rows} == {("E", "3")}
    assert main(["plot", str(runs), "--out", str(tmp_path / "figures")]) == 0
    assert (tmp_path / "figures" / "information_depth.png").stat().st_size > 0


def tiny_run(arch, num_modules, context, out_dir):
    return RunConfig(model=ModelConfig(arch=arch, num_modules=num_modules, context=context),
                     data=DataConfig(dataset="digits", train_subset=40, test_subset=40),
                     train=TrainConfig(epochs=1, batch_size=20, warmup_epochs=0, progress=False),
                     out_dir=str(out_dir))


@pytest.mark.parametrize("arch, num_modules, context", [
    ("torchvision:resnet18", 2, "E"),
    pytest.param("torchvision:mobilenet_v3_small", 3, "R1E", marks=pytest.mark.slow),
    pytest.param("torchvision:resnet50", 4, "E", marks=pytest.mark.slow),
    pytest.param("torchvision:vgg11_bn", 4, "E", marks=pytest.mark.slow),
    pytest.param("torchvision:efficientnet_b0", 4, "E", marks=pytest.mark.slow),
    pytest.param("torchvision:convnext_tiny", 4, "E", marks=pytest.mark.slow),
    pytest.param("torchvision:swin_t", 4, "E", marks=pytest.mark.slow),
])
def test_torchvision_model_trains_one_epoch_and_analyses_every_boundary(arch, num_modules, context, tmp_path):
    run = train(tiny_run(arch, num_modules, context, tmp_path))
    config = AnalysisConfig(y_estimators=("probe_linear",), x_estimators=("reconstruction",), held_out_size=40,
                            fit_size=40, device="cpu")
    rows = analyze_run(run, config)
    model, _ = load_run(run)
    assert model.num_modules == num_modules and model.describe()["adapted"]
    expected = set(boundary_points(model))
    assert len(expected) == 2 * num_modules - 1
    for quantity in ("I(h;x)", "I(h;y)"):
        assert {r["point"] for r in rows if r["quantity"] == quantity} == expected


def test_reproduce_swaps_the_arch(tmp_path, capsys):
    assert main(["reproduce", "table1", "--dry-run", "--arch", "torchvision:resnet18", "--out-dir", str(tmp_path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and all(" torchvision:resnet18 K=16 " in line for line in lines)
    assert main(["reproduce", "table1", "--dry-run", "--arch", "torchvision:resnet19"]) == 2
    assert "close matches: torchvision:resnet18" in capsys.readouterr().err
