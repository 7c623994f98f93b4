"""`mi-analysis bench ksg --load N`: the same KSG call alone and beside N busy processes, in one run.

For each thread setting of estimate(..., threads=...) ("auto", the process's torch thread
count, 1) the call `estimate(x, y, method="ksg", k=5)` is timed (wall clock, median of
--repeats) first without and then with N neighbour processes that keep a core busy each (a
Python busy loop), the settings interleaved within each phase. The ratio loaded / alone is
what a user sees when an analysis shares the machine; a fair share of 2 cores beside 2 busy
processes is 2x. The thread count each call used and the number of runnable threads of other
processes (/proc/loadavg) are recorded per phase.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from typing import Any, Iterator

import torch

from mi_analysis._util.threads import AUTO, busy_elsewhere, resolve_threads
from mi_analysis.bench.common import ratio, report, target
from mi_analysis.estimators import estimate

LOADED_RATIO_LIMIT = 2.5  # "auto" threads, 2 busy neighbours on 2 cores (a fair share is 2x)
BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def busy_neighbours(count: int, settle_s: float = 1.0) -> Iterator[list[subprocess.Popen]]:
    """`count` processes that each keep one core busy until the block ends."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP]))
        time.sleep(settle_s)  # let them reach the run queue before anything is timed
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def _phase(call, settings: list, repeats: int) -> dict[Any, dict[str, Any]]:
    """Median seconds per setting (interleaved), the threads each used, the other runnable threads."""
    seconds: dict[Any, list[float]] = {s: [] for s in settings}
    used: dict[Any, set[int]] = {s: set() for s in settings}
    busy: list[int] = []
    for _ in range(repeats):
        for setting in settings:
            busy.append(busy_elsewhere())
            threads = resolve_threads(setting)  # "auto" resolved here, so the call uses what is recorded
            used[setting].add(threads)
            start = time.perf_counter()
            call(threads)
            seconds[setting].append(time.perf_counter() - start)
    return {s: {"seconds": statistics.median(seconds[s]), "all_seconds": seconds[s], "threads": sorted(used[s]),
                "busy_elsewhere": statistics.median(busy)} for s in settings}


def run(n: int = 10_000, dims: int = 5, k: int = 5, load: int = 2, repeats: int = 3,
        seed: int = 0) -> dict[str, Any]:
    if load < 1 or repeats < 1:
        raise ValueError(f"--load and --repeats must be >= 1, got {load} and {repeats}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dims, generator=generator, dtype=torch.float64)
    y = x + torch.randn(n, dims, generator=generator, dtype=torch.float64)
    settings: list = [AUTO, torch.get_num_threads(), 1]
    settings = list(dict.fromkeys(settings))  # torch may already run one thread

    def call(threads):
        estimate(x, y, method="ksg", k=k, seed=seed, threads=threads)

    call(1)  # warm-up
    alone = _phase(call, settings, repeats)
    with busy_neighbours(load):
        loaded = _phase(call, settings, repeats)
    rows = [{"threads_setting": str(s), "threads_alone": _threads(alone[s]), "seconds_alone": alone[s]["seconds"],
             "busy_alone": alone[s]["busy_elsewhere"], "threads_loaded": _threads(loaded[s]),
             "seconds_loaded": loaded[s]["seconds"], "busy_loaded": loaded[s]["busy_elsewhere"],
             "loaded_ratio": ratio(loaded[s]["seconds"], alone[s]["seconds"]),
             "all_seconds_alone": alone[s]["all_seconds"], "all_seconds_loaded": loaded[s]["all_seconds"]}
            for s in settings]
    columns = (("threads_setting", "threads=", ""), ("threads_alone", "threads used alone", ""),
               ("seconds_alone", "s alone", ".3f"), ("busy_alone", "other runnable, alone", ".0f"),
               ("threads_loaded", f"threads used, {load} busy", ""), ("seconds_loaded", f"s, {load} busy", ".3f"),
               ("busy_loaded", "other runnable, loaded", ".0f"), ("loaded_ratio", "loaded / alone", ".2f"))
    auto = rows[0]
    targets = [target(f"KSG n={n}, threads='auto': beside {load} busy processes / alone", "<=", LOADED_RATIO_LIMIT,
                      auto["loaded_ratio"], f"{auto['seconds_alone']:.3f} s -> {auto['seconds_loaded']:.3f} s")]
    config = {"n": n, "dims": f"{dims}+{dims}", "k": k, "load": load, "repeats": repeats, "clock": "wall",
              "neighbour": f"python -c '{BUSY_LOOP}'"}
    return report("ksg", torch.device("cpu"), config, columns, rows, targets, [f"load{load}"])


def _threads(phase: dict[str, Any]) -> str:
    return "/".join(str(t) for t in phase["threads"])
