"""The parts of multi-process training that need no second process: module assignment, checks
before start, ownership of the state, what crosses a cut, sharding, and a one-rank pipeline."""
import pytest
import torch
import torch.distributed as dist
from dist_workers import tiny_config
from torch import nn

from mi_analysis import cli
from mi_analysis.data import TensorLoader, load_splits
from mi_analysis.training.distributed import GradientAverager, PipelineStage, ShardedLoader, assign_modules, check_setup
from mi_analysis.training.distributed.module_parallel import batch_sizes, state_owners
from mi_analysis.training.distributed.pipeline import boundaries
from mi_analysis.models import build



def small(k, context="R0", **kw):
    torch.manual_seed(0)
    return build("resnet20", k, context, image_size=8, **kw)


def test_assign_modules_gives_consecutive_even_runs():
    assert assign_modules(4, 2) == (range(0, 2), range(2, 4))
    assert assign_modules(5, 2) == (range(0, 3), range(3, 5))
    assert assign_modules(7, 3) == (range(0, 3), range(3, 5), range(5, 7))
    assert assign_modules(3, 3) == (range(0, 1), range(1, 2), range(2, 3))
    with pytest.raises(ValueError, match=r"world_size <= num_modules .* 3 processes for K=2 modules"):
        assign_modules(2, 3)


@pytest.mark.parametrize("parallel, world, schedule, change, message", [
    ("module", 3, "sync", {}, r"3 processes for K=2 modules"),
    ("pipeline", 2, "sync", {}, r"parallel='pipeline' is unknown; expected one of \('data', 'module'\)"),
    ("data", 2, "async", {}, r"schedule='async' applies to module parallel only"),
    ("module", 2, "eager", {}, r"schedule='eager' is unknown; expected one of \('sync', 'async'\)"),
    ("data", 4, "sync", {"train.batch_size": 2}, r"4 processes need train.batch_size >= 4, got 2"),
    ("data", 2, "sync", {"train.device": "cuda:1"}, r"would put every process on one GPU"),
    ("data", 0, "sync", {}, r"number of processes must be a positive int, got 0"),
])
def test_check_setup_refuses_what_cannot_work(tmp_path, parallel, world, schedule, change, message):
    config = tiny_config(tmp_path, 2).override(change)
    with pytest.raises(ValueError, match=message):
        check_setup(config, parallel, world, schedule)


TINY = ["--dataset", "synthetic", "--arch", "resnet20", "--image-size", "8", "--train-subset", "48",
        "--test-subset", "16", "--epochs", "1", "--batch-size", "16", "--no-progress"]


def test_cli_refuses_more_processes_than_modules_before_starting(tmp_path, capsys, monkeypatch):
    import mi_analysis.training.distributed.launch as launch

    monkeypatch.setattr(launch, "spawn", lambda *a, **k: pytest.fail("no process may start"))
    code = cli.main(["train", *TINY, "--modules", "2", "--nproc", "3", "--parallel", "module", "--out-dir", str(tmp_path)])
    assert code == 2
    assert "module parallel needs world_size <= num_modules" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no run directory either
    # the same check under torchrun, before joining the process group
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setattr(launch, "join", lambda *a, **k: pytest.fail("must not join"))
    assert cli.main(["train", *TINY, "--modules", "2", "--parallel", "module", "--out-dir", str(tmp_path)]) == 2
    assert "3 processes for K=2 modules" in capsys.readouterr().err
    assert cli.main(["train", *TINY, "--nproc", "2", "--out-dir", str(tmp_path)]) == 2
    assert "--nproc 2 differs from torchrun's world size 3" in capsys.readouterr().err


@pytest.mark.parametrize("context, kw", [("R0", {}), ("R1E", {}), ("R2", {"reconstruct": True, "lambdas": (1, 1, 1, 1)})])
def test_module_parts_split_the_state_between_modules(context, kw):
    net = small(4, context, **kw)
    seen = [id(p) for k in range(4) for part in net.module_parts(k) for p in part.parameters()]
    assert sorted(seen) == sorted(id(p) for p in net.parameters())  # every parameter in exactly one module
    owners = state_owners(net, assign_modules(4, 2))
    assert owners.keys() == net.state_dict().keys()
    assert {n: r for n, r in owners.items() if n.startswith(("classifier", "aux_heads", "context"))} == {
        n: (1 if n.startswith(("classifier", "aux_heads.2")) or "cut1_" in n or "cut2_" in n else 0)
        for n in owners if n.startswith(("classifier", "aux_heads", "context"))}
    assert all(r == (0 if net.module_of_unit[int(n.split(".")[1])] < 2 else 1)
               for n, r in owners.items() if n.startswith("units."))


def test_boundaries_carry_the_output_and_the_module_inputs_later_cuts_read():
    x = torch.zeros(2, 3, 8, 8)
    keys = {mode: [[s.key for s in b] for b in boundaries(small(4, mode), x)] for mode in ("R0", "E", "R1", "R2", "R1E")}
    assert keys["R0"] == keys["E"] == [["h"], ["h"], ["h"]]  # the image never travels
    assert keys["R1"] == keys["R1E"] == [["h"], ["h", 1], ["h", 2]]  # cut k reads module k's input
    assert keys["R2"] == [["h"], ["h", 1], ["h", 1, 2]]  # cut 2 reads the inputs of modules 2 and 1
    (h0,), (h1, m1), _ = boundaries(small(4, "R1"), x)
    assert m1.shape == h0.shape and h1.dtype == m1.dtype == torch.float32 and not h1.channels_last
    cl = boundaries(small(4, "R1").to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last))
    assert all(s.channels_last for b in cl for s in b)


@pytest.mark.parametrize("context", ["R0", "R1E"])
def test_a_one_rank_pipeline_is_the_training_step(context):
    x, y = torch.randn(6, 3, 8, 8), torch.arange(6) % 3
    net, reference = small(4, context), small(4, context)
    stage = PipelineStage(net, 0, 1, sample=x[:2])
    stage.start_epoch([6])
    out, want = stage.step(x, y), reference.training_step(x, y)
    torch.testing.assert_close(out["loss"], want["loss"])
    torch.testing.assert_close(out["accuracy"], want["accuracy"])
    for (name, p), q in zip(net.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    with pytest.raises(RuntimeError, match=r"pipeline batch 1 has 6 samples; start_epoch announced \[6\]"):
        stage.step(x, y)


def test_sharded_loader_cuts_the_single_process_batches():
    splits = load_splits("synthetic", train_subset=48, val_fraction=0.25, image_size=8)

    def loader():  # each rank has its own, and gets the same batches from it
        return TensorLoader(splits.train, splits.info, batch_size=16, seed=3)

    assert batch_sizes(loader()) == [16, 16, 4] == [len(y) for _, y in loader()]
    single, shards = loader(), [ShardedLoader(loader(), rank, 3) for rank in range(3)]
    for each in (single, *shards):
        each.set_epoch(1)
    for (x, y), *parts in zip(single, *shards, strict=True):
        assert [len(py) for _, py in parts] in ([6, 5, 5], [2, 1, 1])
        assert torch.equal(torch.cat([px for px, _ in parts]), x) and torch.equal(torch.cat([py for _, py in parts]), y)
    assert len(shards[0]) == len(single) == 3


def test_gradient_averager_on_one_rank_keeps_missing_gradients_missing():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        used, unused = nn.Linear(3, 2), nn.Linear(3, 2)
        used(torch.ones(4, 3)).sum().backward()
        want = used.weight.grad.clone()
        GradientAverager([*used.parameters(), *unused.parameters()])(samples=4)
        torch.testing.assert_close(used.weight.grad, want)
        assert unused.weight.grad is None and unused.bias.grad is None
    finally:
        dist.destroy_process_group()
