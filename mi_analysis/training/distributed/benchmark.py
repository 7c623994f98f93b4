"""Throughput of data parallel vs module parallel training with 1, 2, 4, ... processes.

    python benchmarks/bench_distributed.py                          # CPU, gloo, this machine's cores
    python benchmarks/bench_distributed.py --backend nccl --device cuda --nprocs 1 2 4 8 \\
        --arch resnet110 --modules 8 --batch-size 1024 --image-size 32

Every measurement is a fresh launch of N processes running the trainers' own step code
(GradientAverager for data parallel, PipelineStage for module parallel) on a fixed random
batch, so data loading and evaluation are left out. After `--warmup` steps the ranks meet at a
barrier; the clock runs over `--steps` steps until every rank is done and images/s is
steps * batch / (slowest rank's time). One batch is one optimizer step; for module parallel
the measured steps include filling and draining the pipeline (N-1 steps of idle ranks), as an
epoch does once. On the CPU each process gets cores / N torch threads (at least 1); one process
is also measured with a single thread, which separates "more processes" from "fewer threads".
cores_used is the CPU time of all processes over the wall time: how many cores the run got.
Measurements are repeated `--repeats` times, round-robin over the settings so that a change in
the machine's load hits them alike; the median is reported with the range.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist

from mi_analysis.training.distributed.data_parallel import GradientAverager
from mi_analysis.training.distributed.group import require_group
from mi_analysis.training.distributed.launch import spawn
from mi_analysis.training.distributed.pipeline import SCHEDULES, PipelineStage
from mi_analysis.models import CONTEXT_MODES, available_archs, build

COLUMNS = ("parallel", "schedule", "nproc", "threads_per_process", "images_per_s", "images_per_s_min",
           "images_per_s_max", "speedup", "step_ms", "cores_used", "arch", "modules", "context", "batch_size", "image_size",
           "steps", "repeats", "backend", "device")


@dataclasses.dataclass(frozen=True)
class Setting:
    parallel: str  # "data" or "module"
    schedule: str
    arch: str
    modules: int
    context: str
    batch_size: int
    image_size: int
    steps: int
    warmup: int
    device: str
    result: str  # file that rank 0 writes its timing to


def measure_rank(setting: Setting) -> None:
    """One rank of one measurement (run by spawn in a joined process group)."""
    rank, world = require_group()
    device = torch.device(setting.device)
    torch.manual_seed(0)
    net = build(setting.arch, setting.modules, setting.context, image_size=setting.image_size).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(setting.batch_size, 3, setting.image_size, setting.image_size, generator=generator).to(device)
    y = torch.randint(0, 10, (setting.batch_size,), generator=generator).to(device)
    if setting.parallel == "data":
        xs, ys = x.tensor_split(world)[rank], y.tensor_split(world)[rank]
        average = GradientAverager(net.parameters())

        def step():
            net.training_step(xs, ys)
            average(len(ys))
    else:
        stage = PipelineStage(net, rank, world, schedule=setting.schedule, sample=x[:2])
        stage.start_epoch([setting.batch_size] * (setting.warmup + setting.steps))

        def step():
            stage.step(x, y)

    def run(steps: int) -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            step()
            optimizer.step()

    run(setting.warmup)
    dist.barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    run(setting.steps)
    if setting.parallel == "module":
        stage.finish_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = torch.tensor([time.perf_counter() - start], dtype=torch.float64, device=device)
    cpu = torch.tensor([time.process_time() - cpu_start], dtype=torch.float64, device=device)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    dist.all_reduce(cpu, op=dist.ReduceOp.SUM)
    if rank == 0:
        Path(setting.result).write_text(json.dumps({"seconds": elapsed.item(), "cpu_seconds": cpu.item()}))


def measure(setting: Setting, nproc: int, backend: str, threads: int) -> tuple[float, float]:
    """(Wall seconds for setting.steps steps with nproc processes, CPU seconds of all of them)."""
    spawn(measure_rank, nproc, (setting,), backend=backend, threads=threads, timeout_s=600)
    result = json.loads(Path(setting.result).read_text())
    return result["seconds"], result["cpu_seconds"]


def markdown(rows: Sequence[dict]) -> str:
    shown = ("parallel", "schedule", "nproc", "threads_per_process", "images_per_s", "range", "speedup", "step_ms",
             "cores_used")
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        cells = {**row, "images_per_s": f"{row['images_per_s']:.0f}", "speedup": f"{row['speedup']:.2f}",
                 "step_ms": f"{row['step_ms']:.0f}", "range": f"{row['images_per_s_min']:.0f}-{row['images_per_s_max']:.0f}",
                 "cores_used": f"{row['cores_used']:.2f}"}
        lines.append("| " + " | ".join(str(cells[c]) for c in shown) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2, 4], help="process counts to measure")
    p.add_argument("--parallel", nargs="+", choices=("data", "module"), default=["data", "module"])
    p.add_argument("--schedules", nargs="+", choices=SCHEDULES, default=list(SCHEDULES), help="module parallel schedules")
    p.add_argument("--arch", default="resnet32", choices=available_archs())
    p.add_argument("--modules", "-K", type=int, default=4, help="K (module parallel needs K >= every N)")
    p.add_argument("--context", default="R0", choices=CONTEXT_MODES)
    p.add_argument("--batch-size", type=int, default=64, help="global batch (data parallel splits it)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="measurements per setting (median reported)")
    p.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: process r uses cuda:r")
    p.add_argument("--threads", type=int, help="torch threads per process (default: CPU cores / N, at least 1)")
    p.add_argument("--out", type=Path, help="also write the rows to this CSV file")
    args = p.parse_args(argv)
    if "module" in args.parallel and max(args.nprocs) > args.modules:
        p.error(f"module parallel needs --modules >= every N; got K={args.modules}, N up to {max(args.nprocs)}")
    if args.device == "cuda" and args.backend != "nccl":
        p.error("--device cuda goes with --backend nccl")
    cores = os.cpu_count() or 1
    plan = []  # (parallel, schedule, nproc, threads); one process is the plain step in every mode
    for nproc in args.nprocs:
        if nproc == 1:
            plan += [("none", "-", 1, t) for t in sorted({args.threads or cores, 1})]
            continue
        threads = args.threads or max(1, cores // nproc)
        plan += [(par, sched, nproc, threads) for par in args.parallel
                 for sched in (args.schedules if par == "module" else ["-"])]
    seconds: dict[tuple, list[tuple[float, float]]] = {entry: [] for entry in plan}  # (wall, cpu) per repeat
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.repeats):
            for entry in plan:
                parallel, schedule, nproc, threads = entry
                setting = Setting("data" if parallel == "none" else parallel, "sync" if schedule == "-" else schedule,
                                  args.arch, args.modules, args.context, args.batch_size, args.image_size, args.steps,
                                  args.warmup, args.device, str(Path(scratch) / "result.json"))
                seconds[entry].append(measure(setting, nproc, args.backend, threads))
                print(f"{entry}: wall {seconds[entry][-1][0]:.3f} s, cpu {seconds[entry][-1][1]:.3f} s", flush=True)
    images = args.steps * args.batch_size
    rows = []
    for (parallel, schedule, nproc, threads), measured in seconds.items():
        times = [wall for wall, _ in measured]
        median = statistics.median(times)
        cores_used = statistics.median(cpu / wall for wall, cpu in measured)
        rows.append({"parallel": parallel, "schedule": schedule, "nproc": nproc, "threads_per_process": threads,
                     "images_per_s": images / median, "images_per_s_min": images / max(times),
                     "images_per_s_max": images / min(times), "speedup": float("nan"), "step_ms": 1000 * median / args.steps,
                     "cores_used": cores_used,
                     "arch": args.arch, "modules": args.modules, "context": args.context,
                     "batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps,
                     "repeats": args.repeats, "backend": args.backend, "device": args.device})
    baseline = rows[0]["images_per_s"]  # the first row: one process with one thread by default
    for row in rows:
        row["speedup"] = row["images_per_s"] / baseline
    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return 0
