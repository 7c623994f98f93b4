"""Functions that spawned ranks run in the distributed tests (importable by name in the children)."""
import time

import torch.distributed as dist

from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.training.distributed.launch import train_rank
from mi_analysis.training.distributed.module_parallel import ModuleParallelTrainer
from mi_analysis.training.distributed.pipeline import PipelineStage


def tiny_config(out_dir, num_modules, context="R0", *, epochs=1, train=None, **model) -> RunConfig:
    """ResNet-20 on 8x8 synthetic images, 36 training images in batches 16, 16, 4 (3 steps per
    epoch, the last one uneven); a large learning rate so that a wrong gradient shows."""
    return RunConfig(
        model=ModelConfig(arch="resnet20", num_modules=num_modules, context=context, **model),
        data=DataConfig(dataset="synthetic", train_subset=48, test_subset=16, val_fraction=0.25, image_size=8),
        train=TrainConfig(epochs=epochs, batch_size=16, base_lr=1.0, warmup_epochs=0, progress=False, **(train or {})),
        out_dir=str(out_dir),
    )


def run_jobs(jobs):
    """Train each (parallel, schedule, config) in turn, in the same process group."""
    for parallel, schedule, config in jobs:
        train_rank(config, None, parallel, schedule, 60.0)


def fail_at_epoch(config, failing_rank, epoch):
    """Module parallel training in which `failing_rank` raises when it starts `epoch` (0-based)."""
    original = ModuleParallelTrainer.train_epoch

    def train_epoch(self, e):
        if self.rank == failing_rank and e == epoch:
            raise ValueError(f"injected failure on rank {self.rank} at epoch {e + 1}")
        return original(self, e)

    ModuleParallelTrainer.train_epoch = train_epoch
    train_rank(config, None, "module", "sync", 60.0)


def stall_rank(config, stalled_rank, seconds, timeout_s):
    """Module parallel training in which `stalled_rank` goes silent for `seconds` before its
    first batch, while the others wait at most timeout_s for it."""
    original = PipelineStage.step

    def step(self, x, y):
        if dist.get_rank() == stalled_rank:
            time.sleep(seconds)
        return original(self, x, y)

    PipelineStage.step = step
    train_rank(config, None, "module", "sync", timeout_s)
