"""Module parallel (pipelined local learning): each rank trains a run of consecutive modules.

Rank r owns modules assign_modules(K, W)[r], with their auxiliary heads, decoders and the
context encoders that feed them (LocalNet.module_parts). Per batch it receives what crosses
the cut before its first module, runs forward + local backward of each of its modules, and
sends what crosses the cut after its last one; the caller then steps the optimizer, which
moves only parameters that have a gradient, i.e. this rank's.

What crosses the cut after module k (a Boundary): detach(h_k) and the context sources that
later cuts still read (inputs of earlier modules, for Rn). The image itself (read by E and by
the first residual encoder) never travels: every rank iterates the same deterministic loader
(order and augmentation fixed by (seed, epoch)), so it has x and y of every batch already.
The encoders of cut k live on the rank of module k+1, which applies them to what it receives.

Because modules are gradient-isolated, rank r's computation on batch t depends only on its own
parameters after t steps and on its input for batch t, which in turn depends only on the
earlier ranks' parameters after t steps. So any schedule that gives every rank every batch in
order, with one optimizer step per batch, reproduces the single-process trainer exactly, no
matter how far ranks run ahead of each other:
- "sync": a send returns when the receiver has the message; one batch in flight per link.
- "async": up to `depth` batches in flight per link (the sender runs ahead, the receiver
  posts the next receive before computing), which hides jitter and transfer time.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from mi_analysis.training.distributed.group import DEFAULT_TIMEOUT_S, peer_guard, wait
from mi_analysis.models import LocalNet

SCHEDULES = ("sync", "async")
ASYNC_DEPTH = 4  # batches in flight per link with the async schedule
H = "h"  # key of the module output in a Boundary (context sources are keyed by module index)
_ALIGN = 8  # bytes


def assign_modules(num_modules: int, world_size: int) -> tuple[range, ...]:
    """Consecutive modules per rank, as even as possible (earlier ranks take the extra ones)."""
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if world_size > num_modules:
        raise ValueError(f"module parallel needs world_size <= num_modules (each process trains at least "
                         f"one whole module): {world_size} processes for K={num_modules} modules; use at "
                         f"most {num_modules} processes, more modules, or data parallel")
    size, extra = divmod(num_modules, world_size)
    starts = [r * size + min(r, extra) for r in range(world_size + 1)]
    return tuple(range(a, b) for a, b in zip(starts, starts[1:]))


@dataclasses.dataclass(frozen=True)
class Slot:
    key: str | int          # H, or the module whose (context-augmented) input this is
    shape: tuple[int, ...]  # one sample's shape
    dtype: torch.dtype
    channels_last: bool     # sent in NHWC order so the receiver gets the same strides

    def nbytes(self, batch: int) -> int:
        """Bytes of `batch` samples in a message, padded to a multiple of 8 so that every slot
        starts aligned for any dtype."""
        raw = batch * math.prod(self.shape) * self.dtype.itemsize
        return -(-raw // _ALIGN) * _ALIGN


Boundary = tuple[Slot, ...]  # what crosses one cut, in message order


def _slot(key, t: Tensor) -> Slot:
    channels_last = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return Slot(key, tuple(t.shape[1:]), t.dtype, channels_last)


@torch.no_grad()
def boundaries(net: LocalNet, x: Tensor, autocast_dtype: torch.dtype | None = None) -> tuple[Boundary, ...]:
    """What crosses the cut after each module 0..K-2, from a forward of a small batch x (the
    real batch layout: device, memory format) in eval mode; the net's mode is restored."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        sources = net.context_sources(x)
        inp, found = x, []
        for k in range(net.num_modules - 1):
            h = net.module_forward(k, inp, autocast_dtype)
            found.append((_slot(H, h), *(_slot(m, sources[m]) for m in sorted(sources) if m != 0)))
            inp = net.next_input(k, h, sources, autocast_dtype)
    finally:
        for m, training in modes:
            m.training = training
    return tuple(found)


class Link:
    """One direction between neighbouring ranks: per batch one message holding a Boundary's
    tensors as raw bytes. Sends and receives are asynchronous with a deadline on every wait;
    `depth` is how many sent batches may be in flight (0: each send waits for its delivery)."""

    def __init__(self, peer: int, boundary: Boundary, device: torch.device, *, depth: int,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        self.peer, self.boundary, self.device = peer, boundary, device
        self.depth, self.timeout_s = depth, timeout_s
        self._in_flight: collections.deque = collections.deque()  # (work, buffer kept alive, step)
        self._posted: dict[int, tuple] = {}  # step -> (work, buffer)

    # ---------------------------------------------------------------- sending
    def send(self, step: int, tensors: dict) -> None:
        parts = []
        for slot in self.boundary:
            t = tensors[slot.key].detach()
            t = t.permute(0, 2, 3, 1) if slot.channels_last else t
            raw = t.contiguous().reshape(-1).view(torch.uint8)
            parts.append(raw)
            padding = slot.nbytes(len(t)) - raw.numel()
            if padding:
                parts.append(raw.new_zeros(padding))
        buffer = torch.cat(parts)
        with peer_guard(self._sending(step)):
            work = dist.isend(buffer, self.peer, tag=step)
        self._in_flight.append((work, buffer, step))
        while len(self._in_flight) > self.depth:
            self._finish_oldest()

    def flush(self) -> None:
        while self._in_flight:
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        work, _, step = self._in_flight.popleft()
        wait(work, self.timeout_s, self._sending(step))

    def _sending(self, step: int) -> str:
        return f"sending batch {step} to rank {self.peer}"

    def _receiving(self, step: int) -> str:
        return f"receiving batch {step} from rank {self.peer}"

    # ---------------------------------------------------------------- receiving
    def post(self, step: int, batch: int) -> None:
        """Start receiving batch `step` (of `batch` samples) now; receive() collects it."""
        nbytes = sum(slot.nbytes(batch) for slot in self.boundary)
        buffer = torch.empty(nbytes, dtype=torch.uint8, device=self.device)
        with peer_guard(self._receiving(step)):
            self._posted[step] = (dist.irecv(buffer, self.peer, tag=step), buffer)

    def receive(self, step: int, batch: int) -> dict:
        """The tensors of batch `step`, keyed like the Boundary (posting the receive if needed)."""
        if step not in self._posted:
            self.post(step, batch)
        work, buffer = self._posted.pop(step)
        wait(work, self.timeout_s, self._receiving(step))
        out, offset = {}, 0
        for slot in self.boundary:
            n = slot.nbytes(batch)
            flat = buffer[offset:offset + n].view(slot.dtype)[:batch * math.prod(slot.shape)]
            if slot.channels_last:
                c, hgt, wid = slot.shape
                out[slot.key] = flat.view(batch, hgt, wid, c).permute(0, 3, 1, 2)
            else:
                out[slot.key] = flat.view(batch, *slot.shape)
            offset += n
        return out


class PipelineStage:
    """The modules of one rank and its links to the ranks before and after it.

    Call start_epoch(batch_sizes) before an epoch, step(x, y) per batch (gradients into .grad),
    finish_epoch() after it (waits for the last sends).
    """

    def __init__(self, net: LocalNet, rank: int, world_size: int, *, schedule: str = "sync",
                 autocast_dtype: torch.dtype | None = None, sample: Tensor,
                 timeout_s: float = DEFAULT_TIMEOUT_S):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule={schedule!r} is unknown; expected one of {SCHEDULES}")
        self.net, self.autocast_dtype = net, autocast_dtype
        self.modules = assign_modules(net.num_modules, world_size)[rank]
        self.prefetch = schedule == "async"
        cuts = boundaries(net, sample, autocast_dtype) if world_size > 1 else ()
        link = dict(device=sample.device, depth=ASYNC_DEPTH if self.prefetch else 0, timeout_s=timeout_s)
        first, last = self.modules[0], self.modules[-1]
        self.inbox = Link(rank - 1, cuts[first - 1], **link) if first > 0 else None
        self.outbox = Link(rank + 1, cuts[last], **link) if last < net.num_modules - 1 else None
        self._sizes: Sequence[int] = ()
        self._step = 0

    def start_epoch(self, batch_sizes: Sequence[int]) -> None:
        self._sizes, self._step = tuple(batch_sizes), 0

    def step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Forward and local backward of this rank's modules on batch (x, y). Returns "loss" and
        "accuracy" (K,) float32 as LocalNet.training_step, zero for other ranks' modules."""
        net, dtype, step = self.net, self.autocast_dtype, self._step
        if step >= len(self._sizes) or self._sizes[step] != len(y):
            raise RuntimeError(f"pipeline batch {step} has {len(y)} samples; start_epoch announced "
                               f"{list(self._sizes)}")
        sources = net.context_sources(x)
        first, last = self.modules[0], self.modules[-1]
        if self.inbox is None:
            inp = x
        else:
            received = self.inbox.receive(step, len(y))
            if self.prefetch and step + 1 < len(self._sizes):
                self.inbox.post(step + 1, self._sizes[step + 1])
            sources.update((key, t) for key, t in received.items() if key != H)
            inp = net.next_input(first - 1, received[H], sources, dtype)
        target = net.reconstruction_target(x)
        losses = torch.zeros(net.num_modules, device=x.device)
        accuracies = torch.zeros(net.num_modules, device=x.device)
        for k in self.modules:
            h = net.module_forward(k, inp, dtype)
            loss, accuracy, _ = net.module_loss(k, h, y, target, dtype)
            if loss.requires_grad:
                loss.backward()
            losses[k], accuracies[k] = loss.detach().float(), accuracy
            if k < last:
                inp = net.next_input(k, h, sources, dtype)
        if self.outbox is not None:
            self.outbox.send(step, {H: h, **sources})
        self._step += 1
        return {"loss": losses, "accuracy": accuracies}

    def finish_epoch(self) -> None:
        if self._step != len(self._sizes):
            raise RuntimeError(f"pipeline epoch ended after {self._step} of {len(self._sizes)} batches")
        if self.outbox is not None:
            self.outbox.flush()
