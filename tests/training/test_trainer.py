import csv
import math

import pytest
import torch
import yaml

from mi_analysis.analysis import AnalysisConfig, analyze_run
from mi_analysis.training.checkpoints import load_checkpoint
from mi_analysis.training.config import RUN_FORMAT_VERSION, DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.training import Trainer, learning_rate, load_run, train


def tiny_config(tmp_path, **model) -> RunConfig:
    """ResNet-20 on 16x16 synthetic images: a few seconds per run on one core."""
    return RunConfig(
        model=ModelConfig(arch="resnet20", **{"num_modules": 3, "context": "E", **model}),
        data=DataConfig(dataset="synthetic", train_subset=96, test_subset=64, val_fraction=0.25, image_size=16),
        train=TrainConfig(epochs=3, batch_size=32, base_lr=0.1, warmup_epochs=1, progress=False),
        out_dir=str(tmp_path / "runs"),
    )


def test_learning_rate_schedule_known_values():
    config = RunConfig(train=TrainConfig(epochs=160, batch_size=1024, base_lr=0.1, warmup_epochs=10, warmup_start_lr=0.01))
    assert learning_rate(config, 0) == pytest.approx(0.01)
    assert learning_rate(config, 5) == pytest.approx(0.01 + (0.8 - 0.01) * 0.5)
    assert learning_rate(config, 10) == pytest.approx(0.8)
    assert learning_rate(config, 85) == pytest.approx(0.4)  # half-way through the cosine
    assert learning_rate(config, 159) == pytest.approx(0.4 * (1 + math.cos(math.pi * 149 / 150)))


def test_run_directory_contents_and_metrics(tmp_path):
    run_dir = train(tiny_config(tmp_path))
    assert run_dir.name.startswith("synthetic-resnet20-K3-E-cross_entropy-s0-")
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "version.txt", "metrics.csv", "final.json", "checkpoints"}
    assert RunConfig.from_yaml(run_dir / "config.yaml") == tiny_config(tmp_path)
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for k in range(3):
        assert 0.0 <= float(rows[-1][f"acc_m{k}"]) <= 1.0 and float(rows[-1][f"loss_m{k}"]) > 0
    assert float(rows[0]["peak_memory_bytes"]) > 0 and float(rows[0]["images_per_s"]) > 0
    assert float(rows[0]["lr"]) == pytest.approx(0.01) and float(rows[1]["lr"]) == pytest.approx(0.1 * 32 / 128)
    # no leftover temporary files from the atomic writes
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_every_run_gets_a_new_directory(tmp_path):
    config = tiny_config(tmp_path).override({"train.epochs": 1})
    first, second = train(config), train(config)
    assert first != second and first.is_dir() and second.is_dir()


class Interrupt(Exception):
    pass


def test_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, context="R1E")
    reference = train(config)

    original = Trainer.train_epoch

    def crash_at_third_epoch(self, epoch):
        if epoch == 2:
            raise Interrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_third_epoch)
    trainer = Trainer.start(config)
    with pytest.raises(Interrupt):
        trainer.run()
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert load_checkpoint(trainer.run_dir / "checkpoints" / "last.pt", "cpu")["epoch"] == 2

    resumed = Trainer.resume(trainer.run_dir)
    assert resumed.start_epoch == 2
    resumed.run()
    a = list(csv.DictReader(open(reference / "metrics.csv")))
    b = list(csv.DictReader(open(trainer.run_dir / "metrics.csv")))
    for column in ["train_loss", "train_acc", "val_acc", "test_acc", "loss_m0", "acc_m1", "loss_m2"]:
        assert [r[column] for r in a] == [r[column] for r in b], column
    model_a, _ = load_run(reference)
    model_b, _ = load_run(trainer.run_dir)
    for (name, pa), pb in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_resume_refuses_other_settings_and_finished_runs(tmp_path):
    config = tiny_config(tmp_path).override({"train.epochs": 1})
    run_dir = train(config)
    with pytest.raises(ValueError, match=r"flags differ .*model.context: 'E' != 'R0'"):
        Trainer.resume(run_dir, config.override({"model.context": "R0"}))
    with pytest.raises(ValueError, match="already complete"):
        Trainer.resume(run_dir).run()
    with pytest.raises(ValueError, match="not a run directory"):
        Trainer.resume(tmp_path)


def test_load_run_restores_the_trained_model(tmp_path):
    config = tiny_config(tmp_path).override({"train.epochs": 2, "train.save_epochs": [1]})
    run_dir = train(config)
    model, loaded_config = load_run(run_dir)
    assert loaded_config == config and not model.training
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt", "cpu")
    for name, value in model.state_dict().items():
        assert torch.equal(value, state["model"][name])
    early, _ = load_run(run_dir, epoch=1)
    assert any(not torch.equal(a, b) for a, b in zip(early.state_dict().values(), model.state_dict().values()))
    with pytest.raises(FileNotFoundError, match=r"no checkpoint epoch_002.pt .* available: \['epoch_001.pt', 'last.pt'\]"):
        load_run(run_dir, epoch=2)


def test_gpu_flags_run_on_cpu(tmp_path):
    """bf16 autocast and channels_last are accepted on the CPU and still learn something."""
    config = tiny_config(tmp_path).override({"train.epochs": 1, "train.bf16": True, "train.channels_last": True})
    trainer = Trainer.start(config)
    summary = trainer.run()
    assert trainer.device.type == "cpu"
    assert 0.0 <= summary["final_test_acc"] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("flags", [{}, {"train.bf16": True, "train.channels_last": True}, {"train.compile": True}])
def test_cuda_training_with_gpu_flags_records_cuda_memory(tmp_path, flags):
    config = tiny_config(tmp_path, context="R1E").override({"train.device": "cuda", "train.epochs": 2, **flags})
    trainer = Trainer.start(config)
    summary = trainer.run()
    rows = list(csv.DictReader(open(trainer.run_dir / "metrics.csv")))
    assert trainer.device.type == "cuda" and float(rows[0]["cuda_peak_bytes"]) > 0
    assert 0.0 <= summary["final_test_acc"] <= 1.0
    model, _ = load_run(trainer.run_dir, device="cuda")
    assert next(model.parameters()).is_cuda


def _write_without_format_version(run_dir):
    """Make `run_dir` look as run folders did before format versions: no version in config.yaml
    or in the checkpoints, which are bare torch.save files without checksum (the rest of the
    layout is unchanged)."""
    config_path = run_dir / "config.yaml"
    data = yaml.safe_load(config_path.read_text())
    assert data.pop("format_version") == RUN_FORMAT_VERSION
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    for path in (run_dir / "checkpoints").glob("*.pt"):
        state = load_checkpoint(path, "cpu")
        assert state.pop("format_version") == RUN_FORMAT_VERSION
        torch.save(state, path)


def test_run_folder_written_before_format_versions_loads_resumes_and_analyses(tmp_path):
    config = tiny_config(tmp_path).override({"train.epochs": 1})
    run_dir = train(config)
    _write_without_format_version(run_dir)
    model, loaded = load_run(run_dir)
    assert loaded == config and model.mode == "E"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)  # a bare torch.save file
    assert list(state["model"]) == list(model.state_dict())

    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    data["train"]["epochs"] = 2
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data))
    trainer = Trainer.resume(run_dir)
    assert trainer.start_epoch == 1
    assert trainer.run()["epochs"] == 2
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt", "cpu")["format_version"] == RUN_FORMAT_VERSION

    settings = AnalysisConfig(quantities=("y",), y_estimators=("probe_linear",), x_estimators=(),
                              probe_size=32, fit_size=32)
    rows = analyze_run(run_dir, settings)
    assert {(row["mode"], row["K"], row["epoch"]) for row in rows} == {("E", 3, 2)}


def test_run_folder_of_a_newer_format_is_refused_with_what_to_do(tmp_path):
    run_dir = train(tiny_config(tmp_path).override({"train.epochs": 1}))
    path = run_dir / "checkpoints" / "last.pt"
    newer = RUN_FORMAT_VERSION + 1
    torch.save({**load_checkpoint(path, "cpu"), "format_version": newer}, path)
    with pytest.raises(ValueError, match=rf"^checkpoint {path} has format_version {newer}, .* reads format "
                                         rf"versions up to {RUN_FORMAT_VERSION}: upgrade mi_analysis to read it$"):
        load_run(run_dir)
    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**data, "format_version": newer}))
    with pytest.raises(ValueError, match=rf"config.yaml has format_version {newer}, .*upgrade mi_analysis"):
        Trainer.resume(run_dir)
