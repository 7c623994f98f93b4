"""Data parallel training for every mode (E2E, GLL, ContSup).

Every rank holds the whole model and takes a contiguous shard of every batch (ShardedLoader);
after LocalNet.training_step has back-propagated all K local losses into .grad, one flat
all-reduce averages the gradients, weighted by shard size, and every rank takes the same step.

Why not DistributedDataParallel: its reducer fires per parameter during *a* backward and
expects one backward per forward of the wrapped module, but training_step runs K backward
passes (one per module, each freeing its graph before the next module runs) and calls no
wrapped forward at all. Wrapping each module separately would need K DDP objects and a
training step rewritten around them. One all-reduce of one flat bucket per step, after all
backward passes, is simple and gives exactly the sample-weighted mean of the shards'
gradients, which is the full batch's gradient for a per-sample mean loss (batch norm aside,
below). What it gives up is overlapping the reduction with the backward passes: the step
waits for one all-reduce of all gradients.

Batch normalisation is per rank, as with DDP's default: each rank normalises with its own
shard's statistics (torch's SyncBatchNorm runs on GPUs only, and would add two collectives
per batch-norm layer per step). The running statistics, which only evaluation uses, are
averaged over the ranks at the end of every epoch; as exponential averages are linear in
the batch statistics, this is what averaging after every step would give.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import nn

from mi_analysis.training.distributed.group import all_reduce, peer_guard
from mi_analysis.training.distributed.rank_trainer import RankTrainer, ShardedLoader


class GradientAverager:
    """Replace each parameter's .grad by the sample-weighted mean over ranks, in one all-reduce.

    A rank with n samples contributes n * grad; the sum is divided by the total count, so
    unequal shards (the last batch) still give the gradient of the whole batch's mean loss. A
    parameter no rank produced a gradient for keeps .grad = None (the optimizer skips it, as in
    a single process).
    """

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        self.params = [p for p in params if p.requires_grad]
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise TypeError(f"data parallel averages gradients in one bucket and needs one parameter "
                            f"dtype, got {sorted(map(str, dtypes))}")
        self.sizes = [p.numel() for p in self.params]
        total = sum(self.sizes)
        # [n * grads (total) | has-grad flags (one per parameter) | n]
        self._bucket = torch.zeros(total + len(self.params) + 1, dtype=dtypes.pop(), device=self.params[0].device)
        self._grads, self._tail = self._bucket[:total], self._bucket[total:]

    def __call__(self, samples: int) -> None:
        offset = 0
        for p, n in zip(self.params, self.sizes):
            chunk = self._grads[offset:offset + n]
            if p.grad is None:
                chunk.zero_()
            else:
                torch.mul(p.grad.reshape(-1), samples, out=chunk)
            offset += n
        # flags and count in one host-to-device copy, not one per parameter
        self._tail.copy_(torch.tensor([*(p.grad is not None for p in self.params), samples], dtype=self._tail.dtype))
        all_reduce(self._bucket, dist.ReduceOp.SUM, "averaging gradients")
        self._grads.div_(self._tail[-1])
        offset = 0
        flags = self._tail[:-1].tolist()
        for p, n, flag in zip(self.params, self.sizes, flags):
            # a view into the bucket: valid until the next call (the trainer zeroes .grad to None first)
            p.grad = self._grads[offset:offset + n].view(p.shape) if flag else None
            offset += n


def average_batchnorm_statistics(model: nn.Module, world_size: int) -> None:
    """Running mean and variance of every BatchNorm layer, averaged over ranks (one all-reduce)."""
    stats = [buf for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for buf in (m.running_mean, m.running_var) if buf is not None]
    if not stats:
        return
    flat = torch.cat([s.reshape(-1) for s in stats])
    all_reduce(flat, dist.ReduceOp.SUM, "averaging batch-norm statistics").div_(world_size)
    offset = 0
    for s in stats:
        s.copy_(flat[offset:offset + s.numel()].view_as(s))
        offset += s.numel()


class DataParallelTrainer(RankTrainer):
    """One rank of a data parallel run: `DataParallelTrainer.start(config)` on every rank."""

    parallel = "data"

    def __init__(self, config, run_dir, **options: Any) -> None:
        super().__init__(config, run_dir, **options)
        self.train_loader = ShardedLoader(self.train_loader, self.rank, self.world_size)
        self._average = GradientAverager(self.model.parameters())
        with peer_guard("copying rank 0's initial model"):  # same seed gives the same init; make sure
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)

    def _gradients(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(y):
            out = super()._gradients(x, y)
        else:  # a last batch smaller than the number of ranks leaves some ranks nothing
            zeros = torch.zeros(self.model.num_modules, device=self.device)
            out = {"loss": zeros, "accuracy": zeros}
        self._average(len(y))
        return out

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        row = super().train_epoch(epoch)
        average_batchnorm_statistics(self.model, self.world_size)
        return row

    def _reduce_epoch(self, totals: dict[str, Any]) -> dict[str, Any]:
        return self._reduce_totals(totals, shards=True)
