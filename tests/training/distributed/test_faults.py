"""Faults: a rank that raises or goes silent stops every rank with a clear error (no hang), and
--resume continues such a run from its last complete checkpoint to the single-process result."""
import json

import pytest
import torch
from dist_workers import fail_at_epoch, stall_rank, tiny_config

from mi_analysis import cli
from mi_analysis.training.distributed import LaunchError, spawn
from mi_analysis.training import Trainer
from mi_analysis.training.checkpoints import load_checkpoint



def test_a_failing_rank_stops_all_and_resume_continues(tmp_path):
    config = tiny_config(tmp_path / "runs", 4, "E", epochs=2)
    with pytest.raises(LaunchError) as failure:
        spawn(fail_at_epoch, 2, (config, 1, 1), timeout_s=60)
    message = str(failure.value)
    assert message.startswith("2 of 2 processes failed:\n  rank 1: ValueError: injected failure on rank 1 at epoch 2")
    assert "rank 0: PeerError: rank 0: sending batch 0 to rank 1 failed" in message

    (run_dir,) = (tmp_path / "runs").iterdir()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt", "cpu")["epoch"] == 1
    assert not (run_dir / "final.json").exists()
    assert cli.main(["train", "--resume", str(run_dir), "--nproc", "2", "--parallel", "module", "--schedule", "async"]) == 0

    reference = Trainer.start(config.override({"out_dir": str(tmp_path / "reference")}))
    reference.run()
    got = load_checkpoint(run_dir / "checkpoints" / "last.pt", "cpu")
    want = load_checkpoint(reference.run_dir / "checkpoints" / "last.pt", "cpu")
    assert got["epoch"] == want["epoch"] == 2
    for name, value in want["model"].items():
        torch.testing.assert_close(got["model"][name], value, atol=1e-5, rtol=1e-5, msg=name)
    for row, expected in zip(got["metrics"], want["metrics"], strict=True):
        assert row["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-5)
        assert row["test_acc"] == expected["test_acc"]
    launches = json.loads((run_dir / "distributed.json").read_text())["launches"]
    assert [(r["first_epoch"], r["schedule"]) for r in launches] == [(1, "sync"), (2, "async")]


def test_a_silent_rank_times_out_on_every_rank(tmp_path):
    config = tiny_config(tmp_path, 2)
    with pytest.raises(LaunchError) as failure:
        spawn(stall_rank, 2, (config, 1, 4.0, 1.0), timeout_s=60)  # rank 1 silent 4 s, others wait 1 s
    message = str(failure.value)
    assert "rank 0: PeerError: rank 0: sending batch 0 to rank 1 failed" in message and "Timed out" in message
    assert "rank 1: PeerError: rank 1: receiving batch 0 from rank 0 failed" in message
