"""The `mi-analysis` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from mi_analysis.config import DataConfig, ModelConfig, RunConfig, parse_value
from mi_analysis.recipes import EXPERIMENTS, RECIPES, SCALES, default_recipe, experiment, recipe

# Flags that map one-to-one onto config fields: flag dest -> dotted config key.
CONFIG_FLAGS = {
    "arch": "model.arch", "modules": "model.num_modules", "context": "model.context",
    "loss": "model.local_loss", "aux_head": "model.aux_head", "split": "model.split",
    "reconstruct": "model.reconstruct", "aux_widen": "model.aux_widen",
    "recompute_context": "model.recompute_context",
    "dataset": "data.dataset", "root": "data.root", "download": "data.download",
    "val_fraction": "data.val_fraction", "train_subset": "data.train_subset",
    "test_subset": "data.test_subset", "image_size": "data.image_size",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "base_lr": "train.base_lr",
    "seed": "train.seed", "device": "train.device", "bf16": "train.bf16",
    "channels_last": "train.channels_last", "compile": "train.compile",
    "save_epochs": "train.save_epochs", "progress": "train.progress", "out_dir": "out_dir",
}


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", help="resnet20 | resnet32 | resnet56 | resnet110")
    p.add_argument("--modules", "-K", type=int, help="number of gradient-isolated modules K (1 = E2E)")
    p.add_argument("--context", help="context supply mode: R0 (plain GLL), E, R1, R1E, R2, R4, R8, R16, RnE")
    p.add_argument("--loss", help="local loss: cross_entropy | contrast")
    p.add_argument("--aux-head", help="auxiliary head: 0c1f 0c2f 1c1f 1c2f 1c3f 2c2f")
    p.add_argument("--split", help="equal | balanced")
    p.add_argument("--reconstruct", action=argparse.BooleanOptionalAction, default=None,
                   help="add InfoPro's decoder (reconstruction) term to the local losses")
    p.add_argument("--aux-widen", type=float)
    p.add_argument("--recompute-context", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute context encoders in backward (less memory, identical gradients)")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="YAML config file (flags override it)")
    p.add_argument("--recipe", choices=RECIPES, help="default: paper for CIFAR/SVHN/STL-10, quick otherwise")
    _add_model_flags(p)
    p.add_argument("--dataset", help="cifar10 cifar100 svhn stl10 mnist fashion_mnist digits synthetic")
    p.add_argument("--root", help="data folder (a folder of IDX .gz files works for fashion_mnist/mnist)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--val-fraction", type=float)
    p.add_argument("--train-subset", type=int)
    p.add_argument("--test-subset", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--base-lr", type=float, help="learning rate per 128 examples (scaled by batch size)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bfloat16 autocast")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile")
    p.add_argument("--save-epochs", type=int, nargs="*", help="keep these epochs' checkpoints for analysis")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--out-dir", help="folder that receives run directories (default runs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config field, e.g. --set train.warmup_epochs=5 (repeatable)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Recipe defaults < --config file < flags < --set overrides."""
    flags = {key: getattr(args, dest) for dest, key in CONFIG_FLAGS.items() if getattr(args, dest, None) is not None}
    if "train.save_epochs" in flags:
        flags["train.save_epochs"] = list(flags["train.save_epochs"])
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        flags[key] = parse_value(value)
    base = RunConfig.from_yaml(args.config) if args.config else None
    dataset = flags.get("data.dataset") or (base.data.dataset if base else DataConfig().dataset)
    if base is None or args.recipe:
        train = recipe(args.recipe or default_recipe(dataset), dataset)
        base = RunConfig(model=base.model if base else ModelConfig(), data=base.data if base else DataConfig(),
                         train=train, out_dir=base.out_dir if base else "runs")
    return base.override(flags)


def cmd_train(args: argparse.Namespace) -> int:
    from mi_analysis.training import Trainer

    if args.resume:
        explicit = any(getattr(args, d, None) is not None for d in CONFIG_FLAGS) or args.overrides or args.config
        trainer = Trainer.resume(args.resume, config_from_args(args) if explicit else None)
    else:
        trainer = Trainer.start(config_from_args(args))
    print(f"run directory: {trainer.run_dir}")
    summary = trainer.run()
    print(json.dumps({k: v for k, v in summary.items() if k != "parameters"}, indent=2))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from mi_analysis.data import dataset_info
    from mi_analysis.models import build
    from mi_analysis.profile import forward_flops_per_image, training_step_memory

    info = dataset_info(args.dataset)
    image_size = args.image_size or info.image_size
    model = build(
        args.arch or "resnet32", args.modules or 1, args.context or "R0",
        local_loss=args.loss or "cross_entropy", aux_head=args.aux_head or "1c2f",
        num_classes=info.num_classes, in_channels=info.in_channels, image_size=image_size,
        split=args.split or "equal", reconstruct=bool(args.reconstruct), aux_widen=args.aux_widen or 1.0,
        recompute_context=bool(args.recompute_context), dataset=info.name,
    )
    shape = (info.in_channels, image_size, image_size)
    report: dict[str, Any] = {
        **model.describe(),
        "dataset": info.name,
        "input_shape": list(shape),
        "forward_flops_per_image": forward_flops_per_image(model, shape),
    }
    if args.memory_batch:
        report["memory"] = training_step_memory(model, args.memory_batch, shape, info.num_classes)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    configs = experiment(args.experiment, scale=args.scale, seeds=tuple(args.seeds), dataset=args.dataset,
                         out_dir=args.out_dir)
    print(f"{args.experiment}: {EXPERIMENTS[args.experiment][0]} -- {len(configs)} runs ({args.scale} scale)")
    for i, config in enumerate(configs, 1):
        m = config.model
        line = (f"[{i}/{len(configs)}] {config.data.dataset} {m.arch} K={m.num_modules} {m.context} "
                f"{m.local_loss}{' +decoder' if m.reconstruct else ''} split={m.split} seed={config.train.seed} "
                f"epochs={config.train.epochs} batch={config.train.batch_size}")
        print(line, flush=True)
        if not args.dry_run:
            from mi_analysis.training import train

            print(f"    -> {train(config)}", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mi_analysis.demo import run_demo

    run_demo(out_dir=Path(args.out_dir), dataset=args.dataset, epochs=args.epochs, num_modules=args.modules)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mi_analysis.bench import main as bench_main

    return bench_main(args.bench_args)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mi-analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run (E2E, GLL or ContSup)")
    _add_train_flags(p)
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("describe", help="parameter counts, cuts, FLOPs and activation memory of a model")
    _add_model_flags(p)
    p.add_argument("--dataset", default="cifar10", help="sets classes, channels and image size")
    p.add_argument("--image-size", type=int)
    p.add_argument("--memory-batch", type=int, default=0, metavar="B",
                   help="also measure the activation memory of one training step at batch size B")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("reproduce", help="run (or list with --dry-run) every run of a paper experiment")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--dry-run", action="store_true", help="list the runs without training")
    p.add_argument("--scale", choices=SCALES, default="paper")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--dataset", help="swap the data set (e.g. synthetic, offline) keeping everything else")
    p.add_argument("--out-dir", default="runs")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("demo", help="offline E2E vs GLL vs ContSup comparison on a small real data set")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--modules", "-K", type=int, default=4)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out-dir", default="runs/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks: memory, train, estimators (see `mi-analysis bench -h`)",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"mi-analysis {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
