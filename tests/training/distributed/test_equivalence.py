"""Multi-process training on gloo/loopback against single-process training on the same data.

Module parallel (sync and async schedules) must give the parameters, optimizer state and
metrics of the single-process trainer; data parallel those of single-process training whose
gradient is the sample-weighted mean of the per-shard gradients (each shard normalised by its
own batch statistics, as on separate ranks). One launch per world size runs every case.
"""
import csv
import json

import pytest
import torch
from dist_workers import run_jobs, tiny_config
from torch import nn

from mi_analysis.training.distributed import spawn
from mi_analysis.training import Trainer, learning_rate, load_run
from mi_analysis.training.checkpoints import load_checkpoint

torch.set_num_threads(1)  # the ranks run one thread each: same kernels, same sums

# name: (parallel, schedule, K, context, model options, train options)
TWO_RANKS = {
    "module-sync-R0-K2": ("module", "sync", 2, "R0", {}, {}),
    "module-sync-E-K4": ("module", "sync", 4, "E", {}, {}),
    "module-sync-R1-K4-bf16-channels_last": ("module", "sync", 4, "R1", {}, {"bf16": True, "channels_last": True}),
    "module-async-R2-K4-decoder-contrast": ("module", "async", 4, "R2",
                                            {"reconstruct": True, "lambdas": (1, 1, 0.5, 1), "local_loss": "contrast"}, {}),
    "data-E2E": ("data", "sync", 1, "R0", {}, {}),
    "data-E-K3": ("data", "sync", 3, "E", {}, {}),
}
THREE_RANKS = {
    "module-sync-R1E-K3": ("module", "sync", 3, "R1E", {}, {}),
    "data-R1-K2": ("data", "sync", 2, "R1", {}, {}),  # shards 6/5/5, last batch 2/1/1
}


def launch(root, cases, world_size):
    configs = {name: tiny_config(root / name, k, context, train=train, **model)
               for name, (_, _, k, context, model, train) in cases.items()}
    spawn(run_jobs, world_size, ([(cases[n][0], cases[n][1], c) for n, c in configs.items()],), timeout_s=60)
    return {name: (config, next((root / name).iterdir())) for name, config in configs.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    return {**launch(root / "two", TWO_RANKS, 2), **launch(root / "three", THREE_RANKS, 3)}


def checkpoint(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "last.pt", "cpu")


def assert_states_close(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("name", [n for n in (*TWO_RANKS, *THREE_RANKS) if n.startswith("module")])
def test_module_parallel_equals_single_process(runs, name, tmp_path):
    config, run_dir = runs[name]
    reference = Trainer.start(config.override({"out_dir": str(tmp_path)}))
    reference.run()
    got, want = checkpoint(run_dir), checkpoint(reference.run_dir)
    assert_states_close(got["model"], want["model"])
    assert got["optimizer"]["state"].keys() == want["optimizer"]["state"].keys()
    for i, state in want["optimizer"]["state"].items():
        torch.testing.assert_close(got["optimizer"]["state"][i]["momentum_buffer"], state["momentum_buffer"],
                                   atol=1e-5, rtol=1e-5)
    assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    for row, expected in zip(got["metrics"], want["metrics"], strict=True):
        for column, value in expected.items():
            if column.startswith(("loss_m", "acc_m", "train_", "val_", "test_")):
                assert row[column] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), column
    # not vacuous: training moved the parameters
    initial = Trainer(config, tmp_path).model.state_dict()
    assert any(not torch.allclose(initial[n], v) for n, v in got["model"].items() if v.is_floating_point())


def ghost_batch_reference(config, world_size, tmp_path):
    """Single-process training whose step is the sample-weighted mean of per-shard gradients
    (each shard its own batch statistics) and whose batch-norm running statistics are the mean
    of those the shards leave. Returns (model state, [(loss_m, acc_m) per epoch])."""
    trainer = Trainer(config, tmp_path)
    model, optimizer = trainer.model, trainer.optimizer
    stats = [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
    metrics = []
    for epoch in range(config.train.epochs):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, epoch)
        model.train()
        trainer.train_loader.set_epoch(epoch)
        loss_sum = correct_sum = seen = 0
        for x, y in trainer.train_loader:
            start = [b.clone() for b in stats]
            grads = {p: torch.zeros_like(p) for p in model.parameters()}
            ends = []
            for xs, ys in zip(x.tensor_split(world_size), y.tensor_split(world_size)):
                for b, value in zip(stats, start):
                    b.copy_(value)
                model.zero_grad(set_to_none=True)
                out = model.training_step(xs, ys)
                for p in model.parameters():
                    grads[p] += p.grad * len(ys)
                ends.append([b.clone() for b in stats])
                loss_sum, correct_sum = loss_sum + out["loss"] * len(ys), correct_sum + out["accuracy"] * len(ys)
            seen += len(y)
            for i, b in enumerate(stats):
                b.copy_(sum(e[i] for e in ends) / len(ends) if b.is_floating_point() else ends[0][i])
            for p in model.parameters():
                p.grad = grads[p] / len(y)
            optimizer.step()
        metrics.append(((loss_sum / seen).tolist(), (correct_sum / seen).tolist()))
    return model.state_dict(), metrics


@pytest.mark.parametrize("name, world_size", [("data-E2E", 2), ("data-E-K3", 2), ("data-R1-K2", 3)])
def test_data_parallel_equals_averaged_shard_gradients(runs, name, world_size, tmp_path):
    config, run_dir = runs[name]
    state, metrics = ghost_batch_reference(config, world_size, tmp_path)
    got = checkpoint(run_dir)
    assert_states_close(got["model"], state)
    for row, (losses, accuracies) in zip(got["metrics"], metrics, strict=True):
        assert [row[f"loss_m{k}"] for k in range(len(losses))] == pytest.approx(losses, rel=1e-5)
        assert [row[f"acc_m{k}"] for k in range(len(losses))] == pytest.approx(accuracies, rel=1e-6)


def test_run_directory_looks_like_a_single_process_run(runs, tmp_path):
    config, run_dir = runs["module-sync-E-K4"]
    reference = Trainer.start(config.override({"out_dir": str(tmp_path)}))
    reference.run()
    files = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")}
    assert files == {p.relative_to(reference.run_dir).as_posix() for p in reference.run_dir.rglob("*")} | {"distributed.json"}
    with open(run_dir / "metrics.csv") as a, open(reference.run_dir / "metrics.csv") as b:
        assert next(csv.reader(a)) == next(csv.reader(b))
    assert checkpoint(run_dir).keys() == checkpoint(reference.run_dir).keys()
    assert json.loads((run_dir / "final.json").read_text()).keys() == json.loads((reference.run_dir / "final.json").read_text()).keys()
    model, loaded = load_run(run_dir)
    assert loaded == config and model.num_modules == 4
    (launch_record,) = json.loads((run_dir / "distributed.json").read_text())["launches"]
    assert launch_record == {"first_epoch": 1, "world_size": 2, "parallel": "module", "schedule": "sync",
                             "backend": "gloo", "modules_by_rank": [[0, 1], [2, 3]]}
