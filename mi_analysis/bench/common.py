"""What every benchmark shares: device and output flags, the environment record, ratios to a
baseline row, targets, and the report (a markdown table on stdout, JSON + markdown files on request).

A report is a plain dict, so tests and notebooks read the same thing the files hold:
    {"benchmark", "name" (file stem: benchmark and its variant), "environment", "settings",
     "columns": [[key, header, format], ...],
     "rows": [{...raw numbers...}], "targets": [{"what", "target", "measured", "met", "note"}],
     "sections" (optional): [{"title", "columns", "rows"} or {"title", "text"}]}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import torch

MIB = 2**20


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="folder for <benchmark>-<device>[-variant].json and .md")


# clocks for timing: wall, or this process's CPU time (all its threads), which a shared, loaded CPU
# disturbs far less (use it with --threads 1: waiting OpenMP threads spin and count as CPU time)
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


def add_clock_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (CPU only; steadier on a shared machine, "
                             "with --threads 1)")


def clock(name: str, device: torch.device):
    """The timing function of --clock `name` for `device`."""
    if name not in CLOCKS:
        raise ValueError(f"clock must be one of {tuple(CLOCKS)}, got {name!r}")
    if name == "process" and device.type == "cuda":
        raise ValueError("clock 'process' counts CPU time only; on CUDA use 'wall'")
    return CLOCKS[name]


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the options and apply --threads."""
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return args


def environment(device: torch.device) -> dict[str, Any]:
    """Where and when a benchmark ran; the CPU load matters on a shared machine."""
    env = {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline; exactly 1.0 for the baseline itself; None when either is missing."""
    if value is None or baseline is None or baseline == 0:
        return None
    return 1.0 if value == baseline else value / baseline


def target(what: str, goal: str, limit: float, measured: float | None, note: str = "",
           decimals: int | None = 2) -> dict[str, Any]:
    """A target `measured <= limit` (goal "<=") or `measured >= limit` (goal ">="), judged on the
    value rounded to `decimals` (two: as precise as the targets are written; None: exact)."""
    if measured is None or math.isnan(measured):
        met = None
    else:
        measured = float(measured)
        shown = measured if decimals is None else round(measured, decimals)
        met = shown <= limit if goal == "<=" else shown >= limit
    return {"what": what, "target": f"{goal} {limit:g}", "measured": measured, "met": met, "note": note}


def report(benchmark: str, device: torch.device, settings: dict[str, Any], columns: Sequence[tuple[str, str, str]],
           rows: list[dict[str, Any]], targets: Sequence[dict[str, Any]] = (),
           variant: Sequence[str] = ()) -> dict[str, Any]:
    """variant: words that tell this run from others of the same benchmark (e.g. "bf16"); with the
    device type they name the output files, so runs with other flags do not overwrite each other."""
    name = "-".join([benchmark, device.type, *variant])
    return {"benchmark": benchmark, "name": name, "environment": environment(device), "settings": settings,
            "columns": [list(c) for c in columns], "rows": rows, "targets": list(targets)}


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if fmt == "mib":
        return f"{value / MIB:.1f}"
    return format(value, fmt) if fmt else str(value)


def table(columns: Sequence[Sequence[str]], rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of `rows`; columns are (key, header, format) with format "mib" for bytes."""
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


def markdown(result: dict[str, Any]) -> str:
    """The report as markdown: settings line, table, targets."""
    lines = [f"### bench {result['name']}", "",
             "settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()),
             "environment: " + ", ".join(f"{k}={v}" for k, v in result["environment"].items()), "",
             table(result["columns"], result["rows"]).rstrip("\n")]
    if result["targets"]:
        lines += ["", "| target | goal | measured | met | note |", "|---|---|---|---|---|"]
        for t in result["targets"]:
            met = {True: "met", False: "MISSED", None: "-"}[t["met"]]
            lines.append(f"| {t['what']} | {t['target']} | {_cell(t['measured'], '.3g')} | {met} | {t['note']} |")
    for section in result.get("sections", ()):
        body = table(section["columns"], section["rows"]) if "rows" in section else f"```\n{section['text']}\n```"
        lines += ["", f"{section['title']}:", "", body.rstrip("\n")]
    return "\n".join(lines) + "\n"


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print the markdown; with `out`, also write <name>.json and <name>.md there."""
    text = markdown(result)
    print(text, flush=True)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{result['name']}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"{result['name']}.md").write_text(text)
