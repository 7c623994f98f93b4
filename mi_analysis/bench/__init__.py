"""`mi-analysis bench NAME [options]`: measure what local learning promises, and how fast the toolkit is.

    memory      activation memory of one training step (saved for backward, allocator-level,
                CUDA peak) for GLL and ContSup configurations, as ratios to E2E
    train       images/s, FLOPs of a real training step, time per FLOP and memory, ratios to E2E
    ksg         KSG (k=5, n=10,000, 5+5 dims): the torch tiled estimator vs a scipy cKDTree reference
    estimators  the estimator benchmark suite (benchmarks/bench_estimators.py)
    analysis    time of the per-layer MI analysis of a K=16 network vs one training epoch
    distributed images/s of 1, 2 and 4 processes, module parallel vs data parallel (--out FILE.csv)

`mi-analysis bench NAME -h` lists the options of one benchmark. Each prints a markdown table;
--out DIR also writes it as JSON and markdown.
"""

from __future__ import annotations

import importlib
import sys
from typing import Sequence

# name -> module with main(argv); imported only when asked for (a benchmark may need scipy or files)
BENCHMARKS = {
    "memory": "mi_analysis.bench.memory",
    "train": "mi_analysis.bench.train",
    "ksg": "mi_analysis.bench.ksg",
    "estimators": "mi_analysis.bench.estimators",
    "analysis": "mi_analysis.bench.analysis",
    "distributed": "mi_analysis.training.distributed.benchmark",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark {name!r} is unknown; expected one of {tuple(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name]).main(rest)
