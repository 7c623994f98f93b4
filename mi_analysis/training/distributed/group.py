"""The process group: joining it, per-rank devices, and clear errors when a peer fails.

Every process of a run is one rank of one torch.distributed process group: gloo on the CPU,
NCCL on GPUs (rank r uses cuda:LOCAL_RANK). Every wait has a deadline (`timeout_s`, for the
rendezvous, the collectives and each send/receive), so a process that dies or hangs makes the
others fail with a PeerError naming the operation, instead of blocking forever.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

BACKENDS = ("gloo", "nccl")
DEFAULT_TIMEOUT_S = 600.0  # a peer silent this long is taken for dead


class PeerError(RuntimeError):
    """Another process of the group died or hung, so this one cannot go on."""


def backend_for(device: torch.device) -> str:
    """gloo for CPU tensors, NCCL for CUDA tensors."""
    return "nccl" if device.type == "cuda" else "gloo"


def join(backend: str, *, rank: int, world_size: int, timeout_s: float = DEFAULT_TIMEOUT_S,
         store: dist.Store | None = None) -> None:
    """Join the default process group; without `store`, from torchrun's environment (env://).

    With NCCL, rank r first takes cuda:LOCAL_RANK as its current device, so that "cuda" means
    that GPU everywhere (model, data, collectives).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is unknown; expected one of {BACKENDS}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    if backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {rank} wants cuda:{local_rank} but this machine has "
                             f"{torch.cuda.device_count()} GPU(s): use at most that many processes per node")
        torch.cuda.set_device(local_rank)
    timeout = timedelta(seconds=timeout_s)
    if store is None:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, timeout=timeout)
    else:
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def require_group() -> tuple[int, int]:
    """(rank, world size) of the default process group; a clear error when there is none."""
    if not dist.is_initialized():
        raise RuntimeError("multi-process training needs a torch.distributed process group: start it "
                           "with `mi-analysis train --nproc N`, mi_analysis.training.distributed.spawn, or torchrun")
    return dist.get_rank(), dist.get_world_size()


@contextlib.contextmanager
def peer_guard(what: str) -> Iterator[None]:
    """Re-raise a failed communication as a PeerError that says which rank was doing what.

    gloo and NCCL report a dead peer (connection closed) and a silent one (timeout) as
    RuntimeError; keep the guarded block to communication calls only.
    """
    try:
        yield
    except PeerError:
        raise
    except RuntimeError as err:
        rank = dist.get_rank() if dist.is_initialized() else "?"
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PeerError(f"rank {rank}: {what} failed, so another process died or hung (its own error "
                        f"says why): {detail}") from err


def wait(work: dist.Work, timeout_s: float, what: str) -> None:
    """Wait for an asynchronous send/receive at most timeout_s seconds."""
    with peer_guard(what):
        work.wait(timeout=timedelta(seconds=timeout_s))


def all_reduce(tensor: torch.Tensor, op: dist.ReduceOp, what: str) -> torch.Tensor:
    """In-place all-reduce under peer_guard; returns the tensor."""
    with peer_guard(what):
        dist.all_reduce(tensor, op=op)
    return tensor
