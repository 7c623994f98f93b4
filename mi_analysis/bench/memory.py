"""`mi-analysis bench memory`: activation memory of one training step, as ratios to E2E.

For each configuration, one training step on a random batch (default 128 x 3 x 32 x 32) is
measured three ways (mi_analysis.profiling.costs.training_step_memory):
- saved: peak bytes saved for backward, parameters excluded (SavedTensorMeter): how the
  reference implementation's numbers were measured, the targets below are on this measure;
- live: peak bytes of every tensor the step creates (LiveTensorMeter): activations, recomputed
  activations, gradients and backward temporaries, i.e. what an allocator must hold;
- cuda (on CUDA): torch.cuda.max_memory_allocated during the step minus what was there before.
Each is divided by the same measure of the E2E network of the same depth in the same run.
Parameter and optimizer-state bytes (SGD with momentum) are listed beside them.

--arch A [A ...] measures other architectures instead (torchvision:NAME, package.module:factory or
a CIFAR ResNet): E2E, then R0 and E at each K of --modules.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mi_analysis._util.device import resolve_device
from mi_analysis.bench.common import add_common_flags, emit, parse, ratio, report, target
from mi_analysis.models import build
from mi_analysis.models.context import context_mode
from mi_analysis.profiling.costs import training_step_memory


@dataclass(frozen=True)
class Case:
    arch: str
    num_modules: int
    context: str = "R0"
    split: str = "equal"
    recompute_context: bool = False
    reference: float | None = None  # ratio to E2E of the paper's reference code (saved bytes, CPU)
    goal: float | None = None       # a target of ours below the reference (saved bytes)
    live_goal: float | None = None  # a target on the allocator-level peak (live bytes)

    @property
    def label(self) -> str:
        if self.num_modules == 1:
            return f"{self.arch} E2E"
        split = " balanced" if self.split == "balanced" else ""
        recompute = " +recompute" if self.recompute_context else ""
        return f"{self.arch}{split} {self.context} K={self.num_modules}{recompute}"


# allocator-level peak of E at K=16: 0.6x the reference implementation's 0.475 of E2E
LIVE_GOAL = 0.29
GRID_MODES = ("R0", "E", "R1", "R1E", "R2E")
GRID_MODULES = (2, 4, 8, 16)
ARCH_MODULES = (2, 4, 8)  # K of the --arch table: small torchvision models have ~10 units

CASES = (
    Case("resnet32", 1),
    Case("resnet32", 4, reference=0.40),
    Case("resnet32", 8, reference=0.26),
    Case("resnet32", 16, reference=0.16),
    Case("resnet32", 16, "E", reference=0.30, live_goal=LIVE_GOAL),
    Case("resnet32", 16, "E", recompute_context=True, goal=0.20, live_goal=LIVE_GOAL),
    Case("resnet32", 16, "R1E", reference=0.37),
    Case("resnet32", 16, "R1E", recompute_context=True),
    Case("resnet110", 1),
    Case("resnet110", 4, split="balanced", reference=0.29),
    Case("resnet110", 4, "E", split="balanced", reference=0.33),
    Case("resnet110", 4, "E", split="balanced", recompute_context=True),
)

COLUMNS = (
    ("label", "configuration", ""),
    ("parameter_bytes", "params MiB", "mib"),
    ("optimizer_state_bytes", "optim. state MiB", "mib"),
    ("peak_saved_bytes", "saved MiB", "mib"),
    ("saved_ratio", "saved / E2E", ".3f"),
    ("reference", "reference", ".2f"),
    ("peak_live_bytes", "live MiB", "mib"),
    ("live_ratio", "live / E2E", ".3f"),
    ("cuda_peak_bytes", "cuda MiB", "mib"),
    ("cuda_ratio", "cuda / E2E", ".3f"),
    ("largest_module_saved_bytes", "largest module MiB", "mib"),
    ("retained_saved_bytes", "kept across cuts MiB", "mib"),
)


def arch_cases(archs: Sequence[str], modules: Sequence[int]) -> list[Case]:
    """E2E, then R0 and E at each K, of every arch: the memory-vs-K table of any architecture."""
    return [Case(arch, k, context) for arch in archs
            for k, context in [(1, "R0"), *((k, c) for c in ("R0", "E") for k in modules)]]


def grid(arch: str = "resnet32", modes: Sequence[str] = GRID_MODES,
         modules: Sequence[int] = GRID_MODULES) -> tuple[Case, ...]:
    """E2E, then every mode at every K where it is valid, context modes with and without
    recompute_context; the reference ratios and goals of CASES where a case is one of them."""
    known = {case.label: case for case in CASES}
    cases = [Case(arch, 1)]
    for mode in modes:
        for k in modules:
            try:
                context_mode(mode, k)
            except ValueError:
                continue
            for recompute in ((False,) if mode == "R0" else (False, True)):
                case = Case(arch, k, mode, recompute_context=recompute)
                cases.append(known.get(case.label, case))
    return tuple(cases)


def measure(case: Case, batch_size: int, device: torch.device, image_size: int = 32) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(case.arch, case.num_modules, case.context, split=case.split, image_size=image_size,
                  recompute_context=case.recompute_context).to(device)
    memory = training_step_memory(model, batch_size, (3, image_size, image_size), 10)
    return {
        "label": case.label, "arch": case.arch, "num_modules": case.num_modules, "context": case.context,
        "split": case.split, "recompute_context": case.recompute_context, "reference": case.reference,
        **{k: memory[k] for k in ("parameter_bytes", "optimizer_state_bytes", "peak_saved_bytes",
                                  "peak_live_bytes", "module_peak_saved_bytes", "module_peak_live_bytes",
                                  "retained_saved_bytes_at_module_start")},
        "cuda_peak_bytes": memory.get("cuda_peak_bytes"),
        "largest_module_saved_bytes": max(memory["module_peak_saved_bytes"]),
        # the most that stays saved from one module to the next: context only, never activations
        "retained_saved_bytes": max(memory["retained_saved_bytes_at_module_start"]),
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's measures divided by those of the E2E row of the same arch."""
    baselines = {row["arch"]: row for row in rows if row["num_modules"] == 1}
    for row in rows:
        base = baselines.get(row["arch"])
        for measure_key, ratio_key in (("peak_saved_bytes", "saved_ratio"), ("peak_live_bytes", "live_ratio"),
                                       ("cuda_peak_bytes", "cuda_ratio")):
            row[ratio_key] = ratio(row[measure_key], base[measure_key] if base else None)


def targets(rows: list[dict[str, Any]], cases: Sequence[Case]) -> list[dict[str, Any]]:
    by_label = {row["label"]: row for row in rows}
    out = []
    for case in cases:
        row = by_label[case.label]
        if case.reference is not None:
            out.append(target(f"{case.label}: saved / E2E", "<=", case.reference, row["saved_ratio"],
                              "reference implementation, same measure"))
        if case.live_goal is not None:
            out.append(target(f"{case.label}: live / E2E", "<=", case.live_goal, row["live_ratio"],
                              "allocator-level peak, 0.6x the reference's 0.475"))
        if case.goal is not None:
            live = row["live_ratio"]
            out.append(target(f"{case.label}: saved / E2E", "<=", case.goal, row["saved_ratio"],
                              "below the reference" if live is None else
                              f"live / E2E = {live:.3f} (recomputation and backward temporaries included)"))
    return out


def run(batch_size: int = 128, device: str = "cpu", cases: Sequence[Case] = CASES,
        image_size: int = 32, variant: Sequence[str] = ()) -> dict[str, Any]:
    if batch_size < 1 or not cases:
        raise ValueError(f"batch_size must be >= 1 and cases not empty, got {batch_size} and {len(cases)} cases")
    dev = resolve_device(device, "--device")
    rows = [measure(case, batch_size, dev, image_size) for case in cases]
    add_ratios(rows)
    settings = {"batch_size": batch_size, "input": f"3x{image_size}x{image_size}", "classes": 10}
    return report("memory", dev, settings, COLUMNS, rows, targets(rows, cases), variant)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-analysis bench memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--archs", nargs="+", choices=sorted({c.arch for c in CASES}),
                        default=sorted({c.arch for c in CASES}), help="only the configurations of these depths")
    parser.add_argument("--arch", nargs="+", metavar="ARCH",
                        help="measure these architectures instead (torchvision:NAME, package.module:factory, a "
                             "CIFAR ResNet): E2E, then R0 and E at each K of --modules")
    parser.add_argument("--grid", action="store_true",
                        help="instead of the listed configurations: E2E and every --modes at every --modules "
                             "(ResNet-32), context modes with and without recompute_context")
    parser.add_argument("--modes", nargs="+", default=list(GRID_MODES), help="context modes of --grid")
    parser.add_argument("--modules", "-K", type=int, nargs="+",
                        help=f"K values of --arch (default {ARCH_MODULES}) or --grid (default {GRID_MODULES})")
    parser.add_argument("--quick", action="store_true", help="batch of 4 (a smoke test; ratios stay close)")
    args = parse(parser, argv)
    if args.arch and args.grid:
        raise ValueError("--arch and --grid are two different tables; give one of them")
    if args.arch:
        cases = arch_cases(args.arch, args.modules or ARCH_MODULES)
    elif args.grid:
        cases = grid("resnet32", args.modes, args.modules or GRID_MODULES)
    else:
        cases = [case for case in CASES if case.arch in args.archs]
    emit(run(4 if args.quick else args.batch_size, args.device, cases, args.image_size,
             ["grid"] if args.grid else []), args.out)
    return 0
