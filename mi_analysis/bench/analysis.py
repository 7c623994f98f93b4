"""`mi-analysis bench analysis`: what the information analysis of a network costs, next to what
training it costs.

One ResNet (default ResNet-32, K=16, context E) and n random images (default 5,000): the time of
one training epoch over them (batches of --batch-size, as the trainer steps), and the time of
`mi_analysis.analysis.analyze_model` on the same images at the module boundaries (the output of
every module: 16 points at K=16) with one I(h;y) estimator (linear probe, a lower bound) and one
I(h;x) estimator (linear reconstruction), each with its default settings (half the images are
the held-out set, the PCA bases and decoders are fitted on up to 2,000 of the rest).
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch

from mi_analysis._util.device import resolve_device
from mi_analysis.analysis import AnalysisConfig, analyze_model
from mi_analysis.bench.common import add_clock_flag, add_common_flags, clock, emit, parse, ratio, report
from mi_analysis.models import build
from mi_analysis.profiling.costs import timed


def run(n: int = 5_000, *, arch: str = "resnet32", num_modules: int = 16, context: str = "E",
        batch_size: int = 128, device: str = "cpu", clock_name: str = "wall") -> dict[str, Any]:
    if n < 8 or batch_size < 1:
        raise ValueError(f"n must be >= 8 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    dev = resolve_device(device, "--device")
    ticks = clock(clock_name, dev)
    torch.manual_seed(0)
    model = build(arch, num_modules, context).to(dev)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)

    def epoch():
        model.train()
        for start in range(0, n, batch_size):
            optimizer.zero_grad(set_to_none=True)
            model.training_step(x[start:start + batch_size].to(dev), y[start:start + batch_size].to(dev))
            optimizer.step()

    points = tuple(model.unit_names[c] for c in (*model.cuts, len(model.units) - 1))  # module outputs
    config = AnalysisConfig(points=points, quantities=("I(h;y)", "I(h;x)"), y_estimators=("probe_linear",),
                            x_estimators=("reconstruction",), device=str(dev))
    mi_rows: list[dict[str, Any]] = []

    def analysis():
        model.eval()
        mi_rows.extend(analyze_model(model, (x, y), config=config))

    epoch_s = timed(epoch, dev, ticks)
    analysis_s = timed(analysis, dev, ticks)
    rows = [
        {"task": f"one training epoch ({n} images, batch {batch_size})", "seconds": epoch_s, "ratio": 1.0},
        {"task": f"analysis: {len(points)} points, I(h;y) probe_linear + I(h;x) reconstruction "
                 f"({len(mi_rows)} mi.csv rows)", "seconds": analysis_s, "ratio": ratio(analysis_s, epoch_s)},
    ]
    columns = (("task", "task", ""), ("seconds", "seconds", ".1f"), ("ratio", "/ epoch", ".2f"))
    settings = {"arch": arch, "num_modules": num_modules, "context": context, "n": n, "batch_size": batch_size,
                "clock": clock_name}
    variant = ["process_clock"] if clock_name == "process" else []
    return report("analysis", dev, settings, columns, rows, variant=variant)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mi-analysis bench analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(parser)
    parser.add_argument("--n", type=int, default=5_000, help="images (training epoch and analysis)")
    parser.add_argument("--arch", default="resnet32")
    parser.add_argument("--modules", "-K", type=int, default=16)
    parser.add_argument("--context", default="E")
    parser.add_argument("--batch-size", type=int, default=128)
    add_clock_flag(parser)
    parser.add_argument("--quick", action="store_true", help="n=256, ResNet-20, K=4 (a smoke test)")
    args = parse(parser, argv)
    quick = dict(n=256, arch="resnet20", num_modules=4) if args.quick else {}
    options = dict(n=args.n, arch=args.arch, num_modules=args.modules, context=args.context)
    emit(run(**{**options, **quick}, batch_size=args.batch_size, device=args.device, clock_name=args.clock), args.out)
    return 0
