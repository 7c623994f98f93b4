"""`mi-analysis bench ksg`: speed of the KSG estimator (algorithm 1), torch tiles vs a scipy k-d tree.

Data: x ~ N(0, I_d), y = x + N(0, I_d), so I(x; y) = d/2 ln 2 nats (KSG is biased low at this
size and dimension; the number to compare is the two implementations' agreement, not the truth).
Both implementations get the same prepared points (standardised, jittered, on the exact grid of
mi_analysis.estimators.knn), so their neighbour counts and values must agree to rounding:
- torch: mi_analysis.estimators.ksg.ksg_value, exact max-norm neighbours in bounded tiles, on --device;
- scipy: cKDTree k-NN query in the joint space and radius counts in each marginal (max-norm,
  strict radius), the usual reference implementation, with as many workers as torch has threads.
Also timed: the full `estimate(x, y, method="ksg")`, which adds the subsampled standard error.
"""

from __future__ import annotations

import argparse
import math
import statistics
from typing import Any, Sequence

import numpy as np
import torch

from mi_analysis._util.device import resolve_device
from mi_analysis.estimators import estimate
from mi_analysis.estimators.knn import prepare_points
from mi_analysis.estimators.ksg import ksg_value
from mi_analysis.bench.common import (add_clock_flag, add_common_flags, clock, emit, parse, ratio, report,
                                      target)
from mi_analysis.profiling.costs import timed

SECONDS_LIMIT = 2.0   # torch, n=10,000, k=5, 5+5 dims, 2 CPU cores
SPEEDUP_LIMIT = 10.0  # scipy seconds / torch seconds


def scipy_ksg(px: np.ndarray, py: np.ndarray, k: int, workers: int) -> float:
    """KSG algorithm 1 with scipy k-d trees (max-norm), the reference implementation."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    n = px.shape[0]
    joint = np.hstack([px, py])
    distances, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf, workers=workers)
    radius = np.nextafter(distances[:, -1], 0)  # strictly closer than the k-th neighbour
    nx = cKDTree(px).query_ball_point(px, radius, p=np.inf, return_length=True, workers=workers) - 1
    ny = cKDTree(py).query_ball_point(py, radius, p=np.inf, return_length=True, workers=workers) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


def run(n: int = 10_000, dims: int = 5, k: int = 5, repeats: int = 3, device: str = "cpu",
        seed: int = 0, clock_name: str = "wall") -> dict[str, Any]:
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    dev = resolve_device(device, "--device")
    ticks = clock(clock_name, dev)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dims, generator=generator, dtype=torch.float64)
    y = x + torch.randn(n, dims, generator=generator, dtype=torch.float64)
    px, py = prepare_points([x.to(dev), y.to(dev)], standardize_columns=True, jitter_scale=1e-5, seed=seed,
                            precision="float32")
    workers = torch.get_num_threads()
    values: dict[str, float] = {}

    def torch_core():
        values["torch"] = ksg_value(px, py, (k,), 1)

    def torch_estimate():
        values["estimate"] = estimate(x.to(dev), y.to(dev), method="ksg", k=k, seed=seed).value

    def scipy_core():
        values["scipy"] = scipy_ksg(px.double().cpu().numpy(), py.double().cpu().numpy(), k, workers)

    timed(torch_core, dev)  # warm-up (first CUDA use, kernels, allocator)
    seconds = {name: statistics.median(timed(fn, dev, ticks) for _ in range(repeats))
               for name, fn in (("torch", torch_core), ("estimate", torch_estimate), ("scipy", scipy_core))}
    rows = [
        {"implementation": f"torch tiled ksg_value ({dev.type})", "seconds": seconds["torch"],
         "value": values["torch"], "speedup": ratio(seconds["scipy"], seconds["torch"])},
        {"implementation": f"estimate(method='ksg') ({dev.type}, + stderr)", "seconds": seconds["estimate"],
         "value": values["estimate"], "speedup": ratio(seconds["scipy"], seconds["estimate"])},
        {"implementation": f"scipy cKDTree (cpu, {workers} workers)", "seconds": seconds["scipy"],
         "value": values["scipy"], "speedup": 1.0},
    ]
    columns = (("implementation", "implementation", ""), ("seconds", "seconds (median)", ".3f"),
               ("speedup", "scipy s / s", ".2f"), ("value", "I (nats)", ".6f"))
    agree = abs(values["torch"] - values["scipy"])
    note = f"{workers} CPU threads" if dev.type == "cpu" else f"on {dev}"
    targets = [target("torch tiled seconds", "<=", SECONDS_LIMIT, seconds["torch"], note),
               target("speed-up over scipy", ">=", SPEEDUP_LIMIT, rows[0]["speedup"], note),
               target("|torch - scipy| nats", "<=", 1e-9, agree, "same neighbours, same counts",
                      decimals=None)]
    settings = {"n": n, "dims": f"{dims}+{dims}", "k": k, "repeats": repeats, "clock": clock_name,
                "true_mi_nats": dims / 2 * math.log(2)}
    return report("ksg", dev, settings, columns, rows, targets, ["process_clock"] if clock_name == "process" else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-analysis bench ksg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser)
    parser.add_argument("--n", type=int, default=10_000, help="samples")
    parser.add_argument("--dims", type=int, default=5, help="dimensions of x and of y")
    parser.add_argument("-k", type=int, default=5, help="neighbours")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    add_clock_flag(parser)
    parser.add_argument("--load", type=int, metavar="N",
                        help="instead: the same estimate(method='ksg') call alone and beside N busy processes, "
                             "per thread setting (mi_analysis.bench.load; CPU)")
    parser.add_argument("--quick", action="store_true", help="n=1,000, one repeat (a smoke test)")
    args = parse(parser, argv)
    quick = dict(n=1_000, repeats=1) if args.quick else {}
    if args.load is not None:
        from mi_analysis.bench import load

        emit(load.run(**{"n": args.n, "dims": args.dims, "k": args.k, "repeats": args.repeats, **quick},
                      load=args.load), args.out)
        return 0
    emit(run(**{"n": args.n, "dims": args.dims, "k": args.k, "repeats": args.repeats, **quick},
             device=args.device, clock_name=args.clock), args.out)
    return 0
