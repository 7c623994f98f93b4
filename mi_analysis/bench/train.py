"""`mi-analysis bench train`: speed of a training step, E2E vs GLL (R0) vs ContSup, as ratios to E2E.

For each configuration one model is trained on a fixed random batch the way the trainer does it
(zero_grad, LocalNet.training_step, SGD step; --bf16, --channels-last and --compile as in the
trainer, which compiles the backbone units). Warm-up steps are not timed. The timed steps
are interleaved over the configurations (step 1 of each, then step 2 of each, ...), so that
a change of load on a shared machine falls on all of them alike; each gets the median.

- FLOPs are those of a real training step (torch.utils.flop_counter: convolutions and matmuls of
  the backbone, local heads, context encoders and losses): "forward" is the step's forward pass,
  "step" adds backward and any recomputation.
- time per FLOP = median step seconds / forward FLOPs of the batch: the cost of the work a
  configuration asks for, so that heads and context encoders do not count as slowness.
- ops/step: aten operations dispatched in one step (launch and Python overhead grow with it).
- memory: saved-for-backward peak of an eager step (any device); on CUDA also the
  torch.cuda.max_memory_allocated peak of the timed steps above what was allocated before them.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from mi_analysis._util.device import resolve_device
from mi_analysis.bench.common import (add_clock_flag, add_common_flags, clock, emit, parse, ratio, report,
                                      target)
from mi_analysis.models import build
from mi_analysis.profiling.costs import part_costs, timed, training_step_flops, training_step_memory

TIME_PER_FLOP_LIMIT = 1.3  # ContSup E at the largest K vs E2E
REFERENCE_LIMIT = 0.8      # ContSup E at the largest K: our step time / the reference implementation's


@dataclass
class Runner:
    """One configuration, ready to step: model, optimizer, batch, and what was measured."""
    label: str
    num_modules: int
    context: str
    model: Any
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    autocast_dtype: torch.dtype | None
    times: list[float] = field(default_factory=list)
    cuda_peak: int = 0

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        cuda = self.x.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.x.device)
            before = torch.cuda.memory_allocated(self.x.device)
        self.model.training_step(self.x, self.y, autocast_dtype=self.autocast_dtype)
        self.optimizer.step()
        if cuda:
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated(self.x.device) - before)


def _batch(batch_size: int, image_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The benchmark's fixed batch: (B, 3, S, S) normal images and labels of 10 classes, from seed 0."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device)
    return x, torch.randint(0, 10, (batch_size,), generator=generator).to(device)


def _optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """The paper recipe's optimiser (SGD, Nesterov 0.9, weight decay 1e-4) at a small learning rate."""
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)


def prepare(arch: str, num_modules: int, context: str, batch_size: int, image_size: int, device: torch.device, *,
            bf16: bool, channels_last: bool, compile: bool, recompute_context: bool = False,
            lean_context_backward: bool = True) -> tuple[Runner, dict[str, Any]]:
    """A runner and the measurements made on its eager model (FLOPs, ops, saved memory).
    lean_context_backward=False runs every context encoder through plain autograd (the earlier code)."""
    torch.manual_seed(0)
    model = build(arch, num_modules, context, image_size=image_size, recompute_context=recompute_context,
                  lean_context_backward=lean_context_backward).to(device)
    x, y = _batch(batch_size, image_size, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = torch.bfloat16 if bf16 else None
    flops = training_step_flops(model, x, y, autocast_dtype=dtype)
    memory = training_step_memory(model, batch_size, (3, image_size, image_size), 10, autocast_dtype=dtype)
    if compile:
        for unit in model.units:
            unit.compile()
    optimizer = _optimizer(model)
    label = ("E2E" if num_modules == 1 else f"{context} K={num_modules}" + " +recompute" * recompute_context
             + " (plain autograd encoders)" * (not lean_context_backward))
    measured = {"forward_flops": flops["forward"], "step_flops": flops["step"], "ops_per_step": flops["ops"],
                "peak_saved_bytes": memory["peak_saved_bytes"]}
    return Runner(label, num_modules, context, model, optimizer, x, y, dtype), measured


def prepare_reference(path: str, arch: str, num_modules: int, context: str, batch_size: int, image_size: int,
                      device: torch.device, ours: dict[str, Any]) -> tuple[Runner, dict[str, Any]]:
    """A runner of the reference implementation on the same batch; FLOPs are those of our same
    configuration (same network, heads and encoders), memory is not measured here."""
    from mi_analysis.bench.reference import ReferenceNet

    torch.manual_seed(0)
    model = ReferenceNet(path, arch, num_modules, context, batch_size, image_size, device).to(device)
    x, y = _batch(batch_size, image_size, device)
    optimizer = _optimizer(model)
    measured = {"forward_flops": ours["forward_flops"], "step_flops": ours["step_flops"], "ops_per_step": None,
                "peak_saved_bytes": None}
    return Runner(f"reference {context} K={num_modules}", num_modules, context, model, optimizer, x, y, None), measured


def profile_step(runner: Runner, device: torch.device, rows: int = 15) -> str:
    """torch.profiler table of one step: where the time goes, by operator (self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        runner.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


def breakdown(runner: Runner, device: torch.device, clock_name: str = "wall",
              repeats: int = 3) -> list[dict[str, Any]]:
    """Where a step's work and time go, by kind of part (each part timed alone, forward + backward)."""
    parts = part_costs(runner.model, runner.x, runner.y, repeats, runner.autocast_dtype, clock(clock_name, device))
    batch = runner.x.shape[0]
    total = sum(p["seconds"] for p in parts)
    rows = []
    for kind in ("unit", "head", "encoder", "classifier"):
        chosen = [p for p in parts if p["kind"] == kind]
        if not chosen:
            continue
        flops, seconds = sum(p["forward_flops"] for p in chosen), sum(p["seconds"] for p in chosen)
        rows.append({"kind": kind, "parts": len(chosen), "forward_mflops_per_image": flops / batch / 1e6,
                     "ms": 1e3 * seconds, "time_share": seconds / total,
                     "ps_per_forward_flop": 1e12 * seconds / flops if flops else None})
    return rows


BREAKDOWN_COLUMNS = (
    ("kind", "part", ""), ("parts", "count", "d"), ("forward_mflops_per_image", "fwd MFLOP/img", ".1f"),
    ("ms", "fwd+bwd ms (alone)", ".1f"), ("time_share", "share of time", ".2f"),
    ("ps_per_forward_flop", "ps / fwd FLOP", ".1f"),
)


COLUMNS = (
    ("label", "configuration", ""),
    ("step_ms", "step ms (median)", ".1f"),
    ("images_per_s", "images/s", ".1f"),
    ("forward_mflops_per_image", "fwd MFLOP/img", ".1f"),
    ("step_mflops_per_image", "step MFLOP/img", ".1f"),
    ("ps_per_forward_flop", "ps / fwd FLOP", ".1f"),
    ("time_per_flop_ratio", "time/FLOP / E2E", ".2f"),
    ("images_per_s_ratio", "images/s / E2E", ".2f"),
    ("ops_per_step", "ops/step", "d"),
    ("reference_ratio", "step / reference", ".2f"),
    ("peak_saved_bytes", "saved MiB", "mib"),
    ("saved_ratio", "saved / E2E", ".3f"),
    ("cuda_peak_bytes", "cuda MiB", "mib"),
    ("cuda_ratio", "cuda / E2E", ".3f"),
)


def time_steps(runners: Sequence[Runner], warmup: int, steps: int, device: torch.device,
               clock_name: str = "wall") -> None:
    """Warm each runner up, then time `steps` rounds of one step per runner (interleaved)."""
    ticks = clock(clock_name, device)
    for runner in runners:
        for _ in range(warmup):
            runner.step()
    for _ in range(steps):
        for runner in runners:
            runner.times.append(timed(runner.step, device, ticks))


def table_rows(prepared: Sequence[tuple[Runner, dict[str, Any]]], batch_size: int, device: torch.device) -> list[dict]:
    """One row per configuration, with ratios to the first (E2E)."""
    rows = []
    for runner, measured in prepared:
        seconds = statistics.median(runner.times)
        rows.append({
            "label": runner.label, "num_modules": runner.num_modules, "context": runner.context,
            "step_ms": 1e3 * seconds, "step_times_s": runner.times, "images_per_s": batch_size / seconds,
            "forward_mflops_per_image": measured["forward_flops"] / batch_size / 1e6,
            "step_mflops_per_image": measured["step_flops"] / batch_size / 1e6,
            "ps_per_forward_flop": 1e12 * seconds / measured["forward_flops"],
            "ops_per_step": measured["ops_per_step"], "peak_saved_bytes": measured["peak_saved_bytes"],
            "cuda_peak_bytes": runner.cuda_peak if device.type == "cuda" else None,
        })
    base = rows[0]
    for row in rows:
        for key, ratio_key in (("ps_per_forward_flop", "time_per_flop_ratio"), ("images_per_s", "images_per_s_ratio"),
                               ("peak_saved_bytes", "saved_ratio"), ("cuda_peak_bytes", "cuda_ratio")):
            row[ratio_key] = ratio(row[key], base[key])
    by_label = {row["label"]: row for row in rows}
    for row in rows:  # our step time over the reference implementation's, same configuration
        reference = by_label.get(f"reference {row['label']}")
        row["reference_ratio"] = ratio(row["step_ms"], reference["step_ms"]) if reference else None
    return rows


def run(*, arch: str = "resnet32", modules: Sequence[int] = (2, 4, 8, 16), contexts: Sequence[str] = ("R0", "E"),
        batch_size: int = 128, image_size: int = 32, steps: int = 3, warmup: int = 1, device: str = "cpu",
        bf16: bool = False, channels_last: bool = False, compile: bool = False, profile: bool = False,
        parts: bool = False, clock_name: str = "wall", encoder_variants: bool = False,
        reference: str | None = None) -> dict[str, Any]:
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"steps must be >= 1, warmup >= 0 and batch_size >= 1, got steps={steps}, "
                         f"warmup={warmup}, batch_size={batch_size}")
    dev = resolve_device(device, "--device")
    clock(clock_name, dev)  # check it before the long part
    main = [(1, "R0", {})] + [(k, c, {}) for c in contexts for k in modules if k > 1]
    # the largest K of each context mode, recomputed and through plain autograd
    variants = [(max(modules), c, variant) for c in contexts if c != "R0" for variant in
                ({"recompute_context": True}, {"lean_context_backward": False},
                 {"recompute_context": True, "lean_context_backward": False})] if encoder_variants else []
    configs = main + variants
    prepared = [prepare(arch, k, c, batch_size, image_size, dev, bf16=bf16, channels_last=channels_last,
                        compile=compile, **variant) for k, c, variant in configs]
    if reference is not None:  # the paper's code at the largest K of each mode
        if bf16 or channels_last or compile:
            raise ValueError("--reference is timed in plain float32 only: drop --bf16, --channels-last, --compile")
        prepared += [prepare_reference(reference, arch, max(modules), c, batch_size, image_size, dev,
                                       prepared[configs.index((max(modules), c, {}))][1])
                     for c in contexts if max(modules) > 1]
    runners = [runner for runner, _ in prepared]
    time_steps(runners, warmup, steps, dev, clock_name)
    rows = table_rows(prepared, batch_size, dev)
    targets = []
    if "E" in contexts and any(k > 1 for k in modules):
        largest = f"E K={max(modules)}"
        row = next(r for r in rows if r["label"] == largest)
        targets.append(target(f"{largest}: time per forward FLOP / E2E", "<=", TIME_PER_FLOP_LIMIT,
                              row["time_per_flop_ratio"], f"images/s ratio {row['images_per_s_ratio']:.2f}"))
        if row["reference_ratio"] is not None:
            targets.append(target(f"{largest}: step time / reference implementation", "<=", REFERENCE_LIMIT,
                                  row["reference_ratio"], "same batch, timed interleaved"))
    settings = {"arch": arch, "batch_size": batch_size, "input": f"3x{image_size}x{image_size}",
                "warmup_steps": warmup, "timed_steps": steps, "clock": clock_name, "bf16": bf16,
                "channels_last": channels_last, "compile": compile}
    variant = [flag for flag, on in (("bf16", bf16), ("channels_last", channels_last), ("compile", compile),
                                     ("process_clock", clock_name == "process")) if on]
    result = report("train", dev, settings, COLUMNS, rows, targets, variant)
    chosen = (runners[0], runners[len(main) - 1])  # E2E and the last configuration before the variants
    sections = []
    for runner in chosen if parts else ():
        sections.append(_section(f"parts of {runner.label}, each timed alone",
                                 lambda: {"columns": BREAKDOWN_COLUMNS, "rows": breakdown(runner, dev, clock_name)}))
    for runner in chosen if profile else ():
        sections.append(_section(f"torch.profiler, one step of {runner.label}",
                                 lambda: {"text": profile_step(runner, dev)}))
    if sections:
        result["sections"] = sections
    return result


def _section(title: str, make) -> dict[str, Any]:
    """An optional extra of the report; if it fails, the timed table above is still reported, with
    the error in place of the extra."""
    try:
        return {"title": title, **make()}
    except Exception as error:  # noqa: BLE001  (an optional diagnostic must not lose the measurements)
        return {"title": title, "text": f"could not be measured: {type(error).__name__}: {error}"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-analysis bench train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser)
    parser.add_argument("--arch", default="resnet32")
    parser.add_argument("--modules", "-K", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--contexts", nargs="+", default=["R0", "E"], help="context modes besides E2E")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens here)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False, help="bfloat16 autocast")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                        help="torch.compile the backbone units, as the trainer does")
    parser.add_argument("--profile", action="store_true",
                        help="also print a torch.profiler table of one step of E2E and of the last configuration")
    add_clock_flag(parser)
    parser.add_argument("--parts", action="store_true",
                        help="also time each part alone (units, heads, context encoders, classifier) for E2E "
                             "and the last configuration: FLOPs, time and time per FLOP by kind of part")
    parser.add_argument("--encoder-variants", action="store_true",
                        help="also the largest K of each context mode with recompute_context, with plain-autograd "
                             "context encoders (the code before the memory-lean encoder backward), and both")
    parser.add_argument("--reference", metavar="PATH",
                        help="also time the paper's reference implementation (a clone of github.com/Tab-ct/ContSup "
                             "at PATH) at the largest K of each context mode, interleaved with the rest")
    parser.add_argument("--quick", action="store_true", help="batch 8, K 4 and 16, 2 timed steps (a smoke test)")
    args = parse(parser, argv)
    quick = dict(batch_size=8, modules=(4, 16), steps=2, warmup=1) if args.quick else {}
    options = dict(arch=args.arch, modules=args.modules, contexts=args.contexts, batch_size=args.batch_size,
                   image_size=args.image_size, steps=args.steps, warmup=args.warmup)
    result = run(**{**options, **quick}, device=args.device, bf16=args.bf16, channels_last=args.channels_last,
                 compile=args.compile, profile=args.profile, parts=args.parts,
                 clock_name=args.clock, encoder_variants=args.encoder_variants, reference=args.reference)
    emit(result, args.out)
    return 0
