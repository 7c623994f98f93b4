"""Training beyond one process, on torch.distributed (gloo on the CPU, NCCL on GPUs).

- Data parallel (every mode): each rank a contiguous shard of every batch, gradients averaged
  in one flat all-reduce per step (data_parallel.py).
- Module parallel (K > 1): each rank a run of consecutive modules, pipelined; the "sync" and
  "async" schedules both reproduce single-process training exactly (pipeline.py,
  module_parallel.py).

    mi-analysis train --nproc 2 --parallel module --modules 4 ...
    torchrun --nproc-per-node 2 -m mi_analysis.cli train --parallel data ...

From Python, inside a joined process group (e.g. a function run by `spawn`):
    DataParallelTrainer.start(config).run()
    ModuleParallelTrainer.start(config, schedule="async").run()
"""

from mi_analysis.training.distributed.data_parallel import DataParallelTrainer, GradientAverager
from mi_analysis.training.distributed.group import DEFAULT_TIMEOUT_S, PeerError
from mi_analysis.training.distributed.launch import LaunchError, launched_by_torchrun, spawn, train_parallel
from mi_analysis.training.distributed.module_parallel import ModuleParallelTrainer
from mi_analysis.training.distributed.pipeline import SCHEDULES, PipelineStage, assign_modules
from mi_analysis.training.distributed.rank_trainer import PARALLEL_MODES, ShardedLoader, check_setup

__all__ = [
    "DEFAULT_TIMEOUT_S", "DataParallelTrainer", "GradientAverager", "LaunchError", "ModuleParallelTrainer",
    "PARALLEL_MODES", "PeerError", "PipelineStage", "SCHEDULES", "ShardedLoader", "assign_modules",
    "check_setup", "launched_by_torchrun", "spawn", "train_parallel",
]
