"""Module parallel training: the Trainer loop with one PipelineStage per rank.

Every rank builds the whole model and the same optimizer as the single-process trainer (one
SGD over all parameters), but only its own modules get gradients, and torch's SGD skips a
parameter whose .grad is None (no momentum, no weight decay): each rank's step moves exactly
its own parameters, as the single-process step would. At the end of every epoch the ranks
exchange what they own (parameters, batch-norm statistics, momentum buffers), so that every
rank holds the full current state: evaluation then runs data parallel with the full model,
and rank 0 saves one complete checkpoint, the same as a single-process run's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from mi_analysis.training.distributed.group import peer_guard
from mi_analysis.training.distributed.pipeline import PipelineStage, assign_modules
from mi_analysis.training.distributed.rank_trainer import RankTrainer
from mi_analysis.models import LocalNet


def state_owners(net: LocalNet, assignment: tuple[range, ...]) -> dict[str, int]:
    """The rank that trains each entry of net.state_dict() (from LocalNet.module_parts)."""
    rank_of_module = {k: r for r, modules in enumerate(assignment) for k in modules}
    owner = {}
    for k in range(net.num_modules):
        for part in net.module_parts(k):
            for tensor in (*part.parameters(), *part.buffers()):
                owner[id(tensor)] = rank_of_module[k]
    owners = {}
    for name, tensor in net.state_dict(keep_vars=True).items():
        if id(tensor) not in owner:
            raise RuntimeError(f"state entry {name!r} belongs to no module's parts (LocalNet.module_parts)")
        owners[name] = owner[id(tensor)]
    return owners


def batch_sizes(loader) -> list[int]:
    """Sizes of the batches of one pass of a TensorLoader, in order."""
    n, size = loader.num_samples, loader.batch_size
    return [min(size, n - start) for start in range(0, len(loader) * size, size)]


def _on_cpu(state: dict) -> dict:
    return {key: value.detach().cpu() if torch.is_tensor(value) else value for key, value in state.items()}


class ModuleParallelTrainer(RankTrainer):
    """One rank of a module parallel run: `ModuleParallelTrainer.start(config, schedule=...)`."""

    parallel = "module"

    def __init__(self, config, run_dir, **options: Any) -> None:
        super().__init__(config, run_dir, **options)
        m = self.model.config
        sample = torch.zeros(2, m["in_channels"], m["image_size"], m["image_size"], device=self.device)
        if config.train.channels_last:
            sample = sample.contiguous(memory_format=torch.channels_last)
        self.assignment = assign_modules(self.model.num_modules, self.world_size)
        self.stage = PipelineStage(self.model, self.rank, self.world_size, schedule=self.schedule,
                                   autocast_dtype=self.autocast_dtype, sample=sample, timeout_s=self.timeout_s)
        self._owner = state_owners(self.model, self.assignment)
        names = {id(p): name for name, p in self.model.named_parameters()}
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._param_owner = [self._owner[names[id(p)]] for p in params]  # by optimizer state index

    def _launch_details(self) -> dict[str, Any]:
        return {"modules_by_rank": [list(modules) for modules in self.assignment]}

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        self.stage.start_epoch(batch_sizes(self.train_loader))
        row = super().train_epoch(epoch)
        self._share_state()
        return row

    def _gradients(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.stage.step(x, y)

    def _reduce_epoch(self, totals: dict[str, Any]) -> dict[str, Any]:
        self.stage.finish_epoch()  # the last sends are delivered before the collectives start
        return self._reduce_totals(totals, shards=False)

    def _share_state(self) -> None:
        """Every rank gets every rank's parameters, buffers and optimizer state."""
        model_state = {name: tensor.detach().cpu() for name, tensor in self.model.state_dict().items()
                       if self._owner[name] == self.rank}
        optimizer = self.optimizer.state_dict()
        optimizer_state = {i: _on_cpu(s) for i, s in optimizer["state"].items() if self._param_owner[i] == self.rank}
        shares: list = [None] * self.world_size
        with peer_guard("sharing module state at the end of the epoch"):
            dist.all_gather_object(shares, (model_state, optimizer_state))
        model_state, optimizer["state"] = {}, {}
        for own_model, own_optimizer in shares:
            model_state.update(own_model)
            optimizer["state"].update(own_optimizer)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optimizer)
