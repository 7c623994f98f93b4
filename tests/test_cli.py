import json

import pytest

from mi_analysis import cli
from mi_analysis.training.config import RunConfig

TINY = ["--dataset", "synthetic", "--arch", "resnet20", "--image-size", "16", "--train-subset", "64",
        "--test-subset", "32", "--epochs", "1", "--batch-size", "32", "--no-progress"]


def test_describe_json_reports_counts_cuts_and_flops(capsys):
    assert cli.main(["describe", "--arch", "resnet32", "--modules", "16", "--context", "R1E", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameter_counts"]["backbone"] == 466_906
    assert report["parameter_counts"]["context"] == 83_944
    assert report["split_rule"] == "paper table" and report["cuts"] == list(range(15))
    assert report["forward_flops_per_image"] > 2 * RESNET32_MACS  # backbone plus context encoders


# Multiply-adds of ResNet-32 on 32x32, by hand: stem, 10 convs at 32x32 (16 ch), first conv and
# projection shortcut of stages 2 and 3, 9 convs at 16x16 (32 ch) and at 8x8 (64 ch), classifier.
RESNET32_MACS = (3 * 9 * 16 * 1024 + 10 * 16 * 9 * 16 * 1024
                 + 16 * 9 * 32 * 256 + 16 * 32 * 256 + 9 * 32 * 9 * 32 * 256
                 + 32 * 9 * 64 * 64 + 32 * 64 * 64 + 9 * 64 * 9 * 64 * 64 + 64 * 10)


def test_describe_counts_flops_by_hand(capsys):
    cli.main(["describe", "--arch", "resnet32", "--json"])
    assert json.loads(capsys.readouterr().out)["forward_flops_per_image"] == 2 * RESNET32_MACS


def test_describe_measures_memory_that_falls_with_k(capsys):
    peaks = []
    for k in ("1", "4"):
        cli.main(["describe", "--arch", "resnet20", "--modules", k, "--image-size", "16", "--memory-batch", "8", "--json"])
        peaks.append(json.loads(capsys.readouterr().out)["memory"]["peak_saved_bytes"])
    assert peaks[1] < peaks[0]


def test_flags_override_config_file_and_set_overrides_flags(tmp_path):
    path = tmp_path / "c.yaml"
    RunConfig().override({"model.context": "E", "model.num_modules": 4, "train.epochs": 9}).to_yaml(path)
    args = cli.make_parser().parse_args(["train", "--config", str(path), "--epochs", "3", "--set", "train.epochs=5",
                                         "--set", "model.lambdas=[1, 0, 0, 1]"])
    config = cli.config_from_args(args)
    assert (config.model.context, config.model.num_modules, config.train.epochs) == ("E", 4, 5)
    assert config.model.lambdas == (1.0, 0.0, 0.0, 1.0)


def test_default_recipe_follows_the_dataset():
    parse = cli.make_parser().parse_args
    assert cli.config_from_args(parse(["train", "--dataset", "cifar10"])).train.batch_size == 1024
    assert cli.config_from_args(parse(["train", "--dataset", "digits"])).train.epochs == 12
    assert cli.config_from_args(parse(["train", "--dataset", "cifar10", "--recipe", "quick"])).train.epochs == 12


def test_train_then_resume_refuses_changed_flags(tmp_path, capsys):
    assert cli.main(["train", *TINY, "--modules", "2", "--context", "E", "--out-dir", str(tmp_path)]) == 0
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "final.json").read_text())["epochs"] == 1
    code = cli.main(["train", "--resume", str(run_dir), *TINY, "--modules", "2", "--context", "R1",
                     "--out-dir", str(tmp_path)])
    assert code == 2
    assert "model.context: 'E' != 'R1'" in capsys.readouterr().err


def test_bad_names_give_the_valid_list(capsys):
    assert cli.main(["describe", "--arch", "resnet33"]) == 2
    assert "resnet32" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "imagenet"]) == 2
    assert "cifar10" in capsys.readouterr().err


def test_reproduce_dry_run_lists_without_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "train", lambda config: pytest.fail("dry run must not train"))
    assert cli.main(["reproduce", "table1", "--dry-run", "--seeds", "0", "1", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 runs" in out and out.count("resnet32 K=16") == 8
    assert not any(tmp_path.iterdir())


def test_reproduce_runs_every_config(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "train", lambda config: seen.append(config) or tmp_path)
    assert cli.main(["reproduce", "table4", "--scale", "quick", "--dataset", "synthetic", "--out-dir", str(tmp_path),
                     "--download", "--root", str(tmp_path / "data")]) == 0
    assert len(seen) == 15  # 8 modes at K=16, 7 at K=8 (no R16)
    assert all(c.data.dataset == "synthetic" and c.train.epochs == 2 and c.out_dir == str(tmp_path) for c in seen)
    assert all(c.data.download and c.data.root == str(tmp_path / "data") for c in seen)


@pytest.mark.parametrize("seeds, message", [(["0", "0"], "must not repeat a seed"), (["-1"], "seeds must be an int >= 0")])
def test_reproduce_refuses_bad_seeds_by_name(seeds, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "train", lambda config: pytest.fail("bad seeds must not train"))
    assert cli.main(["reproduce", "table1", "--dry-run", "--seeds", *seeds, "--out-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_demo_flags_reach_the_settings(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "run_demo", lambda settings, out_dir: seen.append((settings, out_dir)))
    assert cli.main(["demo", "--seeds", "2", "0", "--image-size", "12", "-K", "4", "--out-dir", str(tmp_path)]) == 0
    (settings, out_dir), = seen
    assert settings.seeds == (2, 0) and settings.image_size == 12 and settings.num_modules == 4
    assert settings.dataset == "fashion_mnist_subset" and out_dir == tmp_path
    assert cli.main(["demo", "--seed", "3", "--out-dir", str(tmp_path)]) == 0 and seen[-1][0].seeds == (3,)
    assert cli.main(["demo", "--seeds", "1", "1", "--out-dir", str(tmp_path)]) == 2
    assert cli.main(["demo", "--train-subset", "all", "--image-size", "native", "--out-dir", str(tmp_path)]) == 0
    assert seen[-1][0].train_subset is None and seen[-1][0].image_size is None


def _flag_help(parser, dest):
    (action,) = [a for a in parser._actions if a.dest == dest]
    return action


@pytest.mark.parametrize("command", ["train", "describe"])
def test_model_flags_are_derived_from_model_config(command):
    """Every one-value ModelConfig field has a flag whose help shows the field's default and
    choices; flags default to None so that only what is typed overrides a config file."""
    parser = cli.make_parser()._subparsers._group_actions[0].choices[command]
    expected = {"arch": "arch", "modules": "num_modules", "context": "context", "loss": "local_loss",
                "aux_head": "aux_head", "local_rule": "local_rule", "split": "split", "reconstruct": "reconstruct",
                "aux_widen": "aux_widen",
                "aux_feature_dim": "aux_feature_dim", "recompute_context": "recompute_context",
                "lean_context_backward": "lean_context_backward"}
    assert {dest: f.name for dest, (f, _, _) in cli.MODEL_FLAGS.items()} == expected
    for dest, name in expected.items():
        action = _flag_help(parser, dest)
        field = cli.ModelConfig.__dataclass_fields__[name]
        assert action.default is None
        assert action.help.endswith(f"(default: {field.default})"), (dest, action.help)
        assert action.help.startswith(field.metadata["help"])
        assert all(choice in action.help for choice in field.metadata["choices"])
    assert _flag_help(parser, "modules").option_strings == ["--modules", "-K"]
    assert _flag_help(parser, "loss").option_strings == ["--loss"]


def test_describe_without_flags_builds_model_config_defaults(capsys):
    assert cli.main(["describe", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    defaults = cli.ModelConfig()
    assert report["arch"] == defaults.arch and report["num_modules"] == defaults.num_modules
    for name in ("context", "split", "local_loss", "aux_head", "aux_widen", "aux_feature_dim", "reconstruct",
                 "recompute_context", "lean_context_backward"):
        assert report[name] == getattr(defaults, name), name


def test_model_flags_reach_the_config_and_bad_values_name_the_field(capsys):
    args = cli.make_parser().parse_args(["train", "-K", "4", "--loss", "contrast", "--aux-feature-dim", "64",
                                         "--no-reconstruct"])
    model = cli.config_from_args(args).model
    assert (model.num_modules, model.local_loss, model.aux_feature_dim, model.reconstruct) == (4, "contrast", 64, False)
    assert model.lean_context_backward is True
    args = cli.make_parser().parse_args(["train", "--no-lean-context-backward", "--recompute-context"])
    model = cli.config_from_args(args).model
    assert model.lean_context_backward is False and model.recompute_context is True
    assert cli.main(["describe", "--aux-head", "9c9f"]) == 2
    assert "aux_head='9c9f' is unknown; expected one of" in capsys.readouterr().err
