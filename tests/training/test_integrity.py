"""Nothing lost, nothing silent: damaged checkpoints, interrupted endings, edited configs, divergence,
and what resume accepts."""

import csv
import json
import shutil

import pytest
import torch

from mi_analysis import cli
from mi_analysis.analysis import AnalysisConfig, analyze_run, collect_runs
from mi_analysis.training import Trainer, load_run, train
from mi_analysis.training.checkpoints import MAGIC, CheckpointError, ConfigMismatch, load_checkpoint
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.training.trainer import TrainingDiverged

CONFIG = RunConfig(
    model=ModelConfig(arch="resnet20", num_modules=2, context="E"),
    data=DataConfig(dataset="synthetic", train_subset=64, test_subset=32, val_fraction=0.25, image_size=16),
    train=TrainConfig(epochs=2, batch_size=32, base_lr=0.1, warmup_epochs=0, progress=False, save_epochs=(1,)),
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-epoch run with epoch 1 kept."""
    return train(CONFIG.override({"out_dir": str(tmp_path_factory.mktemp("runs"))}))


@pytest.fixture
def run_dir(trained, tmp_path):
    """A copy of the finished run, free to damage."""
    return shutil.copytree(trained, tmp_path / trained.name)


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_checkpoints_carry_their_checksum_and_config_hash(run_dir):
    data = (run_dir / "checkpoints" / "last.pt").read_bytes()
    assert data.startswith(MAGIC)
    header = json.loads(data[len(MAGIC):].split(b"\n", 1)[0])
    assert header["bytes"] == len(data) - len(MAGIC) - len(json.dumps(header)) - 1
    assert header["epoch"] == 2 and len(header["sha256"]) == len(header["config_sha256"]) == 64


@pytest.mark.parametrize("damage, message", [
    ("flip", r"is corrupt: its SHA-256 differs from the one written with it"),
    ("truncate", r"is truncated or damaged: it holds \d+ bytes of the \d+ written"),
])
def test_a_damaged_last_checkpoint_is_refused_with_what_to_do(run_dir, capsys, damage, message):
    path = run_dir / "checkpoints" / "last.pt"
    data = bytearray(path.read_bytes())
    if damage == "flip":  # 4 KiB of flipped bytes in the payload
        data[-8192:-4096] = bytes(b ^ 0xFF for b in data[-8192:-4096])
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    advice = r"copy checkpoints/epoch_001.pt over checkpoints/last.pt .*kept: epoch_001.pt"
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} {message}; to resume from a kept checkpoint, {advice}"):
        Trainer.resume(run_dir)
    with pytest.raises(CheckpointError, match=message):
        load_run(run_dir)
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert message.split(":")[0].replace("\\", "") in capsys.readouterr().err


def test_a_damaged_checkpoint_of_format_1_is_a_clear_error(run_dir):
    path = run_dir / "checkpoints" / "last.pt"
    buffer = path.with_name("bare.pt")
    torch.save(load_checkpoint(path, "cpu"), buffer)  # a bare torch.save file, as format 1 wrote
    path.write_bytes(buffer.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} cannot be read \(truncated or corrupt: "):
        load_run(run_dir)


def test_a_missing_last_checkpoint_of_a_trained_run_is_an_error_and_the_advice_works(run_dir):
    (run_dir / "checkpoints" / "last.pt").unlink()
    (run_dir / "final.json").unlink()
    with pytest.raises(CheckpointError, match=r"last.pt is missing, but .*metrics.csv records trained epochs; "
                                              r"to resume from a kept checkpoint, copy checkpoints/epoch_001.pt"):
        Trainer.resume(run_dir)
    assert len(_metrics(run_dir)) == 2  # nothing rewritten
    shutil.copy(run_dir / "checkpoints" / "epoch_001.pt", run_dir / "checkpoints" / "last.pt")
    trainer = Trainer.resume(run_dir)
    assert trainer.start_epoch == 1
    assert trainer.run()["epochs"] == 2
    assert [row["epoch"] for row in _metrics(run_dir)] == ["1", "2"]


def test_a_missing_checkpoint_without_a_kept_one_says_to_start_anew(run_dir):
    for path in (run_dir / "checkpoints").glob("*.pt"):
        path.unlink()
    with pytest.raises(CheckpointError, match="no epoch_XXX.pt checkpoint is kept .*: start a new run"):
        Trainer.resume(run_dir)


def test_resume_completes_a_run_killed_before_final_json_and_removes_stale_temporaries(run_dir, trained):
    final = json.loads((run_dir / "final.json").read_text())
    (run_dir / "final.json").unlink()
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    (run_dir / "metrics.csv").write_text("\n".join(rows[:-1]) + "\n")  # killed before the last metrics write
    stale = [run_dir / ".metrics.csv.abc123.tmp", run_dir / ".final.json.x.tmp", run_dir / "checkpoints" / ".last.pt.q.tmp"]
    for path in stale:
        path.write_text("partial")
    foreign = run_dir / ".mi.csv.zz.tmp"  # an analysis may be writing its table: not the trainer's
    foreign.write_text("partial")
    summary = Trainer.resume(run_dir).run()
    assert {k: v for k, v in summary.items() if k != "run_dir"} == {k: v for k, v in final.items() if k != "run_dir"}
    assert json.loads((run_dir / "final.json").read_text())["epochs"] == 2
    assert (run_dir / "metrics.csv").read_text() == (trained / "metrics.csv").read_text()
    assert not any(path.exists() for path in stale) and foreign.exists()
    with pytest.raises(ValueError, match="already complete"):
        Trainer.resume(run_dir).run()


def test_resume_after_editing_config_yaml_is_refused_with_the_differences(run_dir, capsys):
    (run_dir / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "epoch_001.pt").read_bytes())
    (run_dir / "final.json").unlink()
    text = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(text.replace("seed: 0", "seed: 5").replace("context: E", "context: R1"))
    message = (r"written under another config \(model.context: 'E' in the checkpoint, 'R1' now; train.seed: 0 .* 5 now\); "
               r"undo the edit of .*config.yaml \(only train.epochs, train.save_epochs may change between launches\)")
    with pytest.raises(ConfigMismatch, match=message):
        Trainer.resume(run_dir)
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    assert "train.seed: 0 in the checkpoint, 5 now" in capsys.readouterr().err


def test_resume_takes_the_runs_own_values_and_runtime_flags(run_dir, capsys):
    (run_dir / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "epoch_001.pt").read_bytes())
    (run_dir / "final.json").unlink()
    assert cli.main(["train", "--resume", str(run_dir), "--context", "E", "--modules", "2", "--progress"]) == 0
    assert json.loads((run_dir / "final.json").read_text())["epochs"] == 2
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "train.epochs: 2 != 3" in err and "only train.progress may change on resume" in err


def test_a_data_parallel_width_change_is_refused_unless_allowed_and_then_recorded(run_dir, capsys):
    (run_dir / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "epoch_001.pt").read_bytes())
    (run_dir / "final.json").unlink()
    launch = {"first_epoch": 1, "world_size": 2, "parallel": "data", "schedule": "sync", "backend": "gloo"}
    (run_dir / "distributed.json").write_text(json.dumps({"launches": [launch]}))
    with pytest.raises(ValueError, match=r"trained data parallel over 2 process\(es\), now 1: .*--allow-world-size-change"):
        Trainer.resume(run_dir)
    assert cli.main(["train", "--resume", str(run_dir), "--nproc", "1"]) == 2
    assert "--allow-world-size-change" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run_dir), "--allow-world-size-change"]) == 0
    record = json.loads((run_dir / "distributed.json").read_text())
    assert record["launches"] == [launch]
    assert record["overrides"] == [{"first_epoch": 2, "note": "data parallel width changed from 2 to 1 by "
                                                              "--allow-world-size-change"}]


def test_a_module_parallel_run_resumes_in_one_process(run_dir):
    (run_dir / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "epoch_001.pt").read_bytes())
    launch = {"first_epoch": 1, "world_size": 2, "parallel": "module", "schedule": "sync", "backend": "gloo"}
    (run_dir / "distributed.json").write_text(json.dumps({"launches": [launch]}))
    assert Trainer.resume(run_dir).start_epoch == 1


def test_divergence_stops_training_marks_the_run_failed_and_analysis_refuses_it(tmp_path, trained, capsys):
    out = tmp_path / "runs"
    diverging = CONFIG.override({"train.base_lr": 1e6, "out_dir": str(out)})
    with pytest.raises(TrainingDiverged, match=r"training diverged: the loss of module \d \(of 2, counted from 0\) "
                                               r"became (nan|inf) in epoch \d, step \d of 2, at learning rate"):
        train(diverging)
    (run_dir,) = out.iterdir()
    failed = json.loads((run_dir / "failed.json").read_text())
    assert failed["epoch"] in (1, 2) and failed["module"] in (0, 1) and failed["step"] in (1, 2)
    assert f"epoch {failed['epoch']}, step {failed['step']} of 2" in failed["reason"]
    assert not (run_dir / "final.json").exists()
    assert len(_metrics(run_dir)) == failed["epoch"] - 1 if failed["epoch"] > 1 else not (run_dir / "metrics.csv").exists()
    with pytest.raises(ValueError, match="failed and cannot be resumed: training diverged"):
        Trainer.resume(run_dir)
    with pytest.raises(ValueError, match="failed, its weights are no result: training diverged"):
        analyze_run(run_dir, AnalysisConfig())
    assert cli.main(["train", *_flags(diverging), "--out-dir", str(out)]) == 1
    assert "error: training diverged: the loss of module" in capsys.readouterr().err

    shutil.copytree(trained, out / trained.name)
    (out / "orphan").mkdir()
    with pytest.warns(UserWarning, match="skipping run .*: it failed"):
        assert [s["run"] for s in collect_runs(out)] == [trained.name]
    fast = ["--quantities", "y", "--y-estimators", "probe_linear", "--fit-size", "32"]
    assert cli.main(["analyze", str(run_dir), *fast]) == 2  # one run named: an error
    assert "failed, its weights are no result" in capsys.readouterr().err
    assert cli.main(["analyze", *sorted(map(str, out.iterdir())), *fast]) == 0  # runs/*: skipped, each with a line
    err = capsys.readouterr().err
    assert f"warning: skipping {run_dir}: run {run_dir} failed" in err
    assert f"warning: skipping {out / 'orphan'}: {out / 'orphan'} is not a run directory" in err
    assert (out / trained.name / "mi.csv").is_file()


def _flags(config):
    t, m, d = config.train, config.model, config.data
    return ["--dataset", d.dataset, "--arch", m.arch, "--modules", str(m.num_modules), "--context", m.context,
            "--image-size", str(d.image_size), "--train-subset", str(d.train_subset), "--test-subset",
            str(d.test_subset), "--val-fraction", str(d.val_fraction), "--epochs", str(t.epochs), "--batch-size",
            str(t.batch_size), "--base-lr", str(t.base_lr), "--set", "train.warmup_epochs=0", "--no-progress"]


def test_a_run_diverged_under_an_older_version_is_refused_by_analysis(run_dir):
    path = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(path, "cpu")
    state["metrics"][1]["train_loss"] = float("nan")
    torch.save(state, path)  # as an older version wrote it, without failed.json
    with pytest.raises(ValueError, match="diverged: its training loss is not finite from epoch 2 on"):
        analyze_run(run_dir, AnalysisConfig())


def test_analyze_names_a_folder_given_as_table_and_a_pool_larger_than_the_images(trained, tmp_path, capsys):
    assert cli.main(["analyze", str(trained), "--out", str(tmp_path)]) == 2
    assert f"error: the table {tmp_path} is a folder; expected a csv file path" in capsys.readouterr().err
    assert cli.main(["analyze", str(trained), "--pool", "100", "--out", str(tmp_path / "mi.csv")]) == 2
    assert "error: pool=100 is larger than the inputs' 16x16 map" in capsys.readouterr().err
    assert not (tmp_path / "mi.csv").exists()


def test_divergence_names_the_module_epoch_and_step_where_the_loss_went_bad_first(tmp_path, monkeypatch):
    """Module 1's loss turns NaN at the 2nd step of epoch 2, module 0's (which feeds it nothing back)
    at the 3rd: the message names module 1, epoch 2, step 2."""
    original, calls = Trainer._gradients, []

    def poisoned(self, x, y):  # 3 steps per epoch (96 training samples, batch 32)
        out = original(self, x, y)
        calls.append(1)
        loss = out["loss"].clone()
        if len(calls) >= 5:  # epoch 2, step 2
            loss[1] = float("nan")
        if len(calls) >= 6:  # epoch 2, step 3
            loss[0] = float("nan")
        return {**out, "loss": loss}

    monkeypatch.setattr(Trainer, "_gradients", poisoned)
    config = CONFIG.override({"data.train_subset": 128, "out_dir": str(tmp_path), "train.save_epochs": []})
    with pytest.raises(TrainingDiverged, match=r"the loss of module 1 \(of 2, counted from 0\) became nan in epoch 2, "
                                               r"step 2 of 3, at learning rate 0.0125"):
        train(config)
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "failed.json").read_text())["module"] == 1
    assert [row["epoch"] for row in _metrics(run_dir)] == ["1"]  # the diverged epoch is not recorded


@pytest.mark.slow
def test_analyses_started_at_once_into_one_table_keep_every_row_once(trained, tmp_path):
    """The issue's case: `mi-analysis analyze RUN_i --out all.csv` started several times at once,
    one run twice; every row is in the table exactly once (fast version: tests/analysis/test_table_safety.py)."""
    import os
    import subprocess
    import sys

    runs = [shutil.copytree(trained, tmp_path / f"run{i}") for i in range(3)]
    table = tmp_path / "all.csv"
    fast = ["--quantities", "y", "--y-estimators", "probe_linear", "mixed_knn", "--fit-size", "32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "mi_analysis.cli", "analyze", str(run), "--out", str(table),
                               *fast], env=env, stdout=subprocess.DEVNULL)
             for run in [*runs, runs[0]]]
    assert [p.wait(timeout=900) for p in procs] == [0] * 4
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [(r["run"], r["epoch"], r["point"], r["quantity"], r["estimator"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {k[0] for k in keys} == {"run0", "run1", "run2"}
    per_run = {run: sum(k[0] == run for k in keys) for run in ("run0", "run1", "run2")}
    assert len(set(per_run.values())) == 1 and per_run["run0"] > 0
