"""What the multi-process trainers share: checks before start, rank-0 writing, sums over ranks.

A RankTrainer runs inside an initialised process group (one per rank). Every rank builds the
same model from the run's seed and iterates the same deterministic loaders; only rank 0 writes
the run directory, which therefore looks exactly like a single-process run's (plus
distributed.json, the record of how each launch was parallelised). Evaluation is data
parallel in both modes: each rank scores a contiguous shard of every evaluation batch with the
full model, and the counts are summed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mi_analysis.training.config import RunConfig
from mi_analysis.training.distributed.group import DEFAULT_TIMEOUT_S, all_reduce, peer_guard, require_group
from mi_analysis.training.distributed.pipeline import SCHEDULES, assign_modules
from mi_analysis._util import files
from mi_analysis.training.trainer import DISTRIBUTED_RECORD, Trainer

PARALLEL_MODES = ("data", "module")


def check_setup(config: RunConfig, parallel: str, world_size: int, schedule: str = "sync") -> None:
    """Refuse, before any process starts, settings that cannot work (ValueError naming them)."""
    if parallel not in PARALLEL_MODES:
        raise ValueError(f"parallel={parallel!r} is unknown; expected one of {PARALLEL_MODES}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is unknown; expected one of {SCHEDULES}")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"the number of processes must be a positive int, got {world_size!r}")
    if parallel == "data":
        if schedule != "sync":
            raise ValueError(f"schedule={schedule!r} applies to module parallel only; data parallel "
                             f"processes step together, once per batch")
        if world_size > config.train.batch_size:
            raise ValueError(f"data parallel splits every batch over the processes: {world_size} processes "
                             f"need train.batch_size >= {world_size}, got {config.train.batch_size}")
    else:
        assign_modules(config.model.num_modules, world_size)
        if config.model.local_rule == "man":  # the pipeline's step has no momentum update
            raise ValueError("local_rule='man' keeps a momentum copy of module k+1's first unit in module k's "
                             "head, updated by LocalNet.training_step, which module parallel does not run "
                             "(and at several processes module k+1 lives on another one); use --parallel data")
    device = config.train.device
    if world_size > 1 and device.startswith("cuda:"):
        raise ValueError(f"train.device={device!r} would put every process on one GPU; use 'cuda' or "
                         f"'auto' (process r uses cuda:LOCAL_RANK)")


class RankTrainer(Trainer):
    """Base of DataParallelTrainer and ModuleParallelTrainer (one instance per rank)."""

    parallel = ""  # "data" or "module": set by the subclasses

    def __init__(self, config: RunConfig, run_dir: Path, *, schedule: str = "sync",
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.rank, self.world_size = require_group()
        check_setup(config, self.parallel, self.world_size, schedule)
        self.is_main_process = self.rank == 0
        self.schedule, self.timeout_s = schedule, timeout_s
        super().__init__(config, run_dir)
        self.eval_loaders = {name: ShardedLoader(loader, self.rank, self.world_size)
                             for name, loader in self.eval_loaders.items()}

    @classmethod
    def start(cls, config: RunConfig, **options: Any) -> "RankTrainer":
        check_setup(config, cls.parallel, require_group()[1], options.get("schedule", "sync"))
        return super().start(config, **options)

    @classmethod
    def data_parallel_width(cls) -> int:
        return require_group()[1] if cls.parallel == "data" else 1

    @classmethod
    def _create_run_dir(cls, config: RunConfig) -> Path:
        """Rank 0 creates the run directory and tells the others its name."""
        found = [super()._create_run_dir(config) if require_group()[0] == 0 else None]
        with peer_guard("sharing the run directory"):
            dist.broadcast_object_list(found, src=0)
        return found[0]

    def run(self) -> dict[str, Any]:
        if self.is_main_process:
            self._record_launch()
        return super().run()

    def _record_launch(self) -> None:
        """Append this launch (from which epoch, how many processes, which mode) to distributed.json."""
        path = self.run_dir / DISTRIBUTED_RECORD
        record = json.loads(path.read_text()) if path.is_file() else {}
        record.setdefault("launches", []).append({
            "first_epoch": self.start_epoch + 1, "world_size": self.world_size, "parallel": self.parallel,
            "schedule": self.schedule, "backend": dist.get_backend(), **self._launch_details()})
        files.write_json(path, record)

    def _launch_details(self) -> dict[str, Any]:
        return {}

    def _save(self, epochs_done: int) -> None:
        if self.is_main_process:
            super()._save(epochs_done)

    def _reduce_counts(self, counts: torch.Tensor) -> torch.Tensor:
        return all_reduce(counts, dist.ReduceOp.SUM, "summing evaluation counts")

    def _reduce_totals(self, totals: dict[str, Any], *, shards: bool) -> dict[str, Any]:
        """Epoch totals over ranks: loss and correct sums added; samples added when each rank saw
        a shard (data parallel), else every rank saw them all; time and peaks: the largest."""
        loss_sum, correct_sum = totals["loss_sum"], totals["correct_sum"]
        k = len(loss_sum)
        sums = torch.cat([loss_sum, correct_sum, loss_sum.new_tensor([totals["seen"] if shards else 0])])
        all_reduce(sums, dist.ReduceOp.SUM, "summing epoch metrics")
        names = ("time_s", "peak_memory_bytes", "cuda_peak_bytes")
        maxima = torch.tensor([float(totals[n]) for n in names], dtype=torch.float64, device=loss_sum.device)
        all_reduce(maxima.nan_to_num_(nan=-math.inf), dist.ReduceOp.MAX, "comparing epoch times")
        out = {"loss_sum": sums[:k], "correct_sum": sums[k:2 * k],
               "seen": int(sums[-1].item()) if shards else totals["seen"], "time_s": maxima[0].item()}
        for name, value in zip(names[1:], maxima[1:].tolist()):
            out[name] = int(value) if math.isfinite(value) else float("nan")
        return out


class ShardedLoader:
    """A TensorLoader whose every batch is cut into world_size contiguous shards (sizes differ by
    at most one); this rank gets shard `rank`. The order and augmentation stay those of the
    single-process loader, since the shards are cut after the whole batch is made."""

    def __init__(self, loader, rank: int, world_size: int) -> None:
        self.loader, self.rank, self.world_size = loader, rank, world_size

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for x, y in self.loader:
            yield x.tensor_split(self.world_size)[self.rank], y.tensor_split(self.world_size)[self.rank]
