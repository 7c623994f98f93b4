"""Cost of a model: FLOPs of inference and of a real training step, the measured memory of a
training step (saved for backward, allocator-level, per module), and the time of its parts.

Every measurement leaves the model as it found it: parameters, BatchNorm statistics, train/eval
mode, and no gradients.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from mi_analysis._util.checks import int_at_least
from mi_analysis.profiling.memory import LiveTensorMeter, SavedTensorMeter, optimizer_state_bytes, tensor_bytes


def forward_flops_per_image(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs (multiply and add counted separately) of one inference forward pass, batch of one."""
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    # the fused inference kernels of nn.MultiheadAttention / TransformerEncoderLayer are invisible to
    # the counter (a tiny ViT read 23x too few FLOPs); the unfused path computes the same matmuls
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=_device(model)))
    finally:
        model.train(was_training)
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return int(counter.get_total_flops())


class _OpCounter(TorchDispatchMode):
    """Counts the aten operations dispatched (a proxy for per-step launch and Python overhead)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def training_step_flops(model: Any, x: torch.Tensor, y: torch.Tensor,
                        autocast_dtype: torch.dtype | None = None) -> dict[str, int]:
    """FLOPs of one real `training_step` on the batch (x, y), counted by torch.utils.flop_counter
    (matmuls and convolutions; normalisation, activations and pooling are not FLOPs there).

    "forward": the step's forward only (backbone, local heads, context encoders, losses), measured
    by running training_step without autograd, which skips its backward calls.
    "step": forward + backward (+ any recomputation), and "ops": aten operations of the step.
    """
    with _state_restored(model):
        model.train()
        with torch.no_grad(), FlopCounterMode(display=False) as forward:
            model.training_step(x, y, autocast_dtype=autocast_dtype)
    with _state_restored(model):
        model.train()
        with FlopCounterMode(display=False) as step, _OpCounter() as ops:
            model.training_step(x, y, autocast_dtype=autocast_dtype)
    return {"forward": int(forward.get_total_flops()), "step": int(step.get_total_flops()),
            "ops": ops.count}


def _nesterov_sgd(parameters) -> torch.optim.Optimizer:
    """The trainer's optimizer (its state is what matters here; lr 0 leaves parameters alone)."""
    return torch.optim.SGD(parameters, lr=0.0, momentum=0.9, nesterov=True)


def training_step_memory(model: Any, batch_size: int, input_shape: tuple[int, ...], num_classes: int,
                         seed: int = 0, *, autocast_dtype: torch.dtype | None = None,
                         optimizer: Callable[[Any], torch.optim.Optimizer] = _nesterov_sgd) -> dict[str, Any]:
    """Memory of one `training_step` on a random batch, in bytes.

    peak_saved_bytes: peak of tensors saved for backward (SavedTensorMeter; parameters and buffers
        excluded).
    peak_live_bytes: peak of all tensors the step creates (LiveTensorMeter: activations,
        recomputed activations, gradients, backward temporaries).
    module_peak_saved_bytes[k]: saved-bytes peak from the start of module k's forward to the start
        of module k+1's (its forward, head, backward, and the context it computes for k+1);
        module_peak_live_bytes[k]: the same window on the live measure.
    retained_saved_bytes_at_module_start[k]: saved bytes still alive when module k starts; only
        context (encoders of the previous cut, kept module inputs) may be there, never activations
        of earlier modules.
    parameter_bytes, optimizer_state_bytes (SGD with momentum, as the trainer builds it);
    cuda_peak_bytes on CUDA: torch.cuda.max_memory_allocated during the step minus what was
    allocated before it.
    """
    int_at_least(batch_size, "batch_size", 1)
    device = _device(model)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *input_shape, generator=generator).to(device)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    num_modules = model.num_modules
    first_units = [model.units[model.module_of_unit.index(k)] for k in range(num_modules)]
    saved_peaks: list[int] = []
    live_peaks: list[int] = []
    retained: list[int] = []
    cuda = device.type == "cuda"

    with _state_restored(model), contextlib.ExitStack() as stack:
        model.train()
        # parameters and buffers (BatchNorm statistics) are model state, not activations
        saved = SavedTensorMeter(exclude=[*model.parameters(), *model.buffers()])
        live = LiveTensorMeter()

        def module_starts(unit, args):
            if retained:  # close the previous module's windows
                saved_peaks.append(saved.window_peak_bytes)
                live_peaks.append(live.window_peak_bytes)
            retained.append(saved.start_window())
            live.start_window()

        for unit in first_units:
            stack.callback(unit.register_forward_pre_hook(module_starts).remove)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            allocated_before = torch.cuda.memory_allocated(device)
        with saved, live:
            model.training_step(x, y, autocast_dtype=autocast_dtype)
        saved_peaks.append(saved.window_peak_bytes)
        live_peaks.append(live.window_peak_bytes)
        if cuda:
            torch.cuda.synchronize(device)
            cuda_peak = torch.cuda.max_memory_allocated(device) - allocated_before
        opt = optimizer([p for p in model.parameters() if p.grad is not None])
        opt.step()
        state_bytes = optimizer_state_bytes(opt)
        del opt
    report = {
        "batch_size": batch_size,
        "peak_saved_bytes": saved.peak_bytes,
        "peak_live_bytes": live.peak_bytes,
        "parameter_bytes": tensor_bytes(model.parameters()),
        "optimizer_state_bytes": state_bytes,
        "module_peak_saved_bytes": saved_peaks,
        "module_peak_live_bytes": live_peaks,
        "retained_saved_bytes_at_module_start": retained,
    }
    if cuda:
        report["cuda_peak_bytes"] = cuda_peak
    return report


def part_costs(model: Any, x: torch.Tensor, y: torch.Tensor, repeats: int = 3,
               autocast_dtype: torch.dtype | None = None,
               clock: Callable[[], float] = time.perf_counter) -> list[dict[str, Any]]:
    """Forward FLOPs and median forward + backward seconds of every part of a LocalNet, each run
    alone on the input it gets in a real forward of (x, y): backbone units, local heads, context
    encoders, classifier. Tells where the time of a step goes and how well each part uses it.
    (Reconstruction decoders, called through their loss rather than their forward, are not timed.)

    Returns rows {"part", "kind" ("unit" | "head" | "encoder" | "classifier"), "forward_flops",
    "seconds"}.
    """
    first_units = {model.module_of_unit.index(k) for k in range(model.num_modules)}
    has_context = len(model.context.encoders) > 0
    # (name, kind, module, whether the step back-propagates into its input): not into the image,
    # nor into the encoders' detached sources; into a module's first unit only through context
    parts = [(name, "unit", unit, i > 0 and (i not in first_units or has_context))
             for i, (name, unit) in enumerate(zip(model.unit_names, model.units))]
    parts += [(f"head{k}", "head", head, True) for k, head in enumerate(model.aux_heads)]
    parts += [(f"context.{key}", "encoder", encoder, False) for key, encoder in model.context.encoders.items()]
    parts.append(("classifier", "classifier", model.classifier, True))
    inputs: dict[str, torch.Tensor] = {}
    with _state_restored(model), contextlib.ExitStack() as stack:
        model.train()
        for name, _, part, _ in parts:
            def keep(module, args, name=name):
                inputs.setdefault(name, args[0].detach())
            stack.callback(part.register_forward_pre_hook(keep).remove)
        with torch.no_grad():
            model.training_step(x, y, autocast_dtype=autocast_dtype)
    rows = []
    device = x.device
    with _state_restored(model):
        model.train()
        for name, kind, part, needs_grad in parts:
            inp = inputs[name].requires_grad_(needs_grad)
            autocast = torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                      enabled=autocast_dtype is not None)
            with autocast:
                with torch.no_grad(), FlopCounterMode(display=False) as counter:
                    part(inp)

                def forward_backward():
                    out = part(inp)
                    out.backward(torch.ones_like(out))

                forward_backward()  # warm-up
                seconds = sorted(timed(forward_backward, device, clock) for _ in range(repeats))[repeats // 2]
            rows.append({"part": name, "kind": kind, "forward_flops": int(counter.get_total_flops()),
                         "seconds": seconds})
    return rows


def timed(fn: Callable[[], Any], device: torch.device, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of fn() on `clock` (wall by default; time.process_time counts only this process's CPU
    time, steadier on a shared CPU), with the device's queue drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def _state_restored(model: torch.nn.Module) -> Iterator[None]:
    """Run a measurement, then put back parameters, buffers, mode, and clear gradients."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        for m, training in modes:
            m.training = training
