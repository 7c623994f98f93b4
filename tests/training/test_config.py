import pytest
import yaml

from mi_analysis.training.checkpoints import ConfigMismatch, load_checkpoint, save_checkpoint
from mi_analysis.training.config import RUN_FORMAT_VERSION, DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.training.recipes import EXPERIMENTS, experiment, recipe


def test_yaml_round_trip(tmp_path):
    config = RunConfig(
        model=ModelConfig(arch="resnet110", num_modules=8, context="R1E", lambdas=(5.0, 0.0, 0.5, 1.0)),
        data=DataConfig(dataset="svhn", train_subset=100),
        train=TrainConfig(epochs=3, save_epochs=(1, 3), bf16=True),
        out_dir=str(tmp_path),
    )
    config.to_yaml(tmp_path / "c.yaml")
    assert RunConfig.from_yaml(tmp_path / "c.yaml") == config


def test_unknown_keys_are_errors():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['modules'\] in config.model; valid keys"):
        RunConfig.from_dict({"model": {"modules": 4}})
    with pytest.raises(ValueError, match="unknown key"):
        RunConfig.from_dict({"optimizer": {}})


@pytest.mark.parametrize(
    "section, value, message",
    [
        ({"train": {"epochs": "ten"}}, None, "config.train.epochs must be an integer"),
        ({"train": {"bf16": 1}}, None, "config.train.bf16 must be true or false"),
        ({"model": {"lambdas": [1, 2]}}, None, "config.model.lambdas"),
    ],
)
def test_wrong_types_are_errors(section, value, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(section)


def test_override_and_differences():
    base = RunConfig()
    changed = base.override({"model.context": "E", "train.epochs": 7, "out_dir": "elsewhere"})
    assert (changed.model.context, changed.train.epochs, changed.out_dir) == ("E", 7, "elsewhere")
    assert base.differences(changed) == [
        "model.context: 'R0' != 'E'", "out_dir: 'runs' != 'elsewhere'", "train.epochs: 160 != 7",
    ]
    with pytest.raises(ValueError, match="override key 'epochs' must be <section>.<field>"):
        base.override({"epochs": 3})


def test_paper_recipe_lr_per_batch_size():
    cifar = RunConfig(train=recipe("paper", "cifar10"))
    stl = RunConfig(train=recipe("paper", "stl10"))
    assert (cifar.train.batch_size, cifar.lr) == (1024, pytest.approx(0.8))
    assert (stl.train.batch_size, stl.lr) == (128, pytest.approx(0.1))
    assert cifar.train.nesterov and cifar.train.weight_decay == 1e-4 and cifar.train.epochs == 160
    with pytest.raises(ValueError, match="recipe must be one of"):
        recipe("fast", "cifar10")


def test_experiments_match_the_paper_tables():
    table1 = experiment("table1")
    assert [(c.model.arch, c.model.num_modules, c.model.context) for c in table1] == [
        ("resnet32", 16, mode) for mode in ("R0", "E", "R1", "R1E")
    ]
    table2 = experiment("table2", seeds=(0, 1))
    assert len(table2) == 2 * 4 * 2 * 2  # modes x K x losses x seeds
    table4 = {(c.model.num_modules, c.model.context) for c in experiment("table4")}
    assert (16, "R16") in table4 and (8, "R16") not in table4 and (8, "R8") in table4
    table3 = experiment("table3")
    assert {c.data.dataset for c in table3} == {"cifar10", "svhn", "stl10"}
    assert all(c.model.reconstruct and c.model.context == "R1E" for c in table3)
    assert {c.train.batch_size for c in table3 if c.data.dataset == "stl10"} == {128}
    assert set(EXPERIMENTS) >= {"table1", "table2", "table3", "table4", "figure4"}


def test_quick_scale_shrinks_data_and_epochs():
    quick = experiment("table1", scale="quick", dataset="synthetic")
    assert all(c.train.epochs == 2 and c.data.train_subset == 512 and c.data.dataset == "synthetic" for c in quick)
    with pytest.raises(ValueError, match="experiment must be one of"):
        experiment("table9")


def test_model_errors_name_the_field_also_from_yaml():
    with pytest.raises(ValueError, match=r"^aux_head='9c9f' is unknown; expected one of"):
        RunConfig.from_dict({"model": {"aux_head": "9c9f"}})
    with pytest.raises(ValueError, match=r"^config.model.num_modules must be an integer, got 'four'$"):
        RunConfig.from_dict({"model": {"num_modules": "four"}})


def test_config_yaml_carries_the_run_format_version(tmp_path):
    path = tmp_path / "c.yaml"
    RunConfig().to_yaml(path)
    assert yaml.safe_load(path.read_text())["format_version"] == RUN_FORMAT_VERSION == 2
    assert path.read_text().startswith("format_version: 2\n")


def test_config_yaml_without_a_version_reads_and_a_newer_one_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    config = RunConfig(model=ModelConfig(num_modules=4, context="E"))
    data = config.to_dict()
    path.write_text(yaml.safe_dump(data))
    assert RunConfig.from_yaml(path) == config
    path.write_text(yaml.safe_dump({"format_version": 3, **data}))
    with pytest.raises(ValueError, match=rf"^config file {path} has format_version 3, but mi_analysis .* reads "
                                         r"format versions up to 2: upgrade mi_analysis to read it$"):
        RunConfig.from_yaml(path)
    path.write_text(yaml.safe_dump({"format_version": "1", **data}))
    with pytest.raises(ValueError, match=r"format_version must be a positive int, got '1'"):
        RunConfig.from_yaml(path)
    path.write_text(yaml.safe_dump({"format_version": 1, "modle": {}}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['modle'\] in config"):
        RunConfig.from_yaml(path)


def test_a_run_config_from_before_lean_context_backward_loads_and_resumes_with_its_default(tmp_path):
    """config.yaml and checkpoints of older runs lack the field: read with the default (True), the
    checkpoint's config matches the run's, so the run resumes."""
    old = RunConfig(model=ModelConfig(num_modules=4, context="E")).to_dict()
    del old["model"]["lean_context_backward"]
    config = RunConfig.from_dict(old)
    assert config.model.lean_context_backward is True
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {}, "epoch": 1, "config": old})
    assert load_checkpoint(path, "cpu", config)["config"] == old
    with pytest.raises(ConfigMismatch, match=r"model.lean_context_backward: True in the checkpoint, False now"):
        load_checkpoint(path, "cpu", config.override({"model.lean_context_backward": False}))


@pytest.mark.parametrize("section, values, message", [
    (TrainConfig, {"epochs": 0}, "train.epochs must be an int >= 1, got 0"),
    (TrainConfig, {"base_lr": float("inf")}, "train.base_lr must be a positive number, got inf"),
    (TrainConfig, {"warmup_epochs": -1}, "train.warmup_epochs must be an int >= 0, got -1"),
    (TrainConfig, {"eval_every": 0}, "train.eval_every must be an int >= 1, got 0"),
    (TrainConfig, {"epochs": 3, "save_epochs": (0, 3, 4)}, r"train.save_epochs must be epochs in 1..3 \(train.epochs\), got \[0, 4\]"),
    (TrainConfig, {"seed": -1}, "train.seed must be an int >= 0, got -1"),
    (TrainConfig, {"device": "tpu"}, "train.device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    (TrainConfig, {"weight_decay": -1e-4}, r"train.weight_decay must be a finite number >= 0, got -0.0001"),
    (DataConfig, {"val_fraction": 1.0}, r"data.val_fraction must be a number in \[0, 1\), got 1.0"),
    (DataConfig, {"test_subset": 0}, "data.test_subset must be an int >= 1, got 0"),
])
def test_every_numeric_range_is_checked_when_a_config_is_made(section, values, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        section(**values)
    with pytest.raises(ValueError, match=message):  # a config file or override reaches the same check
        RunConfig().override({f"{'train' if section is TrainConfig else 'data'}.{k}": list(v) if isinstance(v, tuple) else v
                              for k, v in values.items()})


def test_a_config_written_for_a_gpu_still_reads_on_a_cpu_machine():
    assert TrainConfig(device="cuda:3").device == "cuda:3"
