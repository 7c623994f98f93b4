"""The `mi-analysis` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
import typing
from pathlib import Path
from typing import Any, Sequence

import torch

from mi_analysis._util.config import parse_value
from mi_analysis._util.threads import resolve_threads
from mi_analysis.analysis import AnalysisConfig, analyze_run, settings_path
from mi_analysis.analysis.comparisons import ALPHA, compare
from mi_analysis.analysis.figures import make_figures
from mi_analysis.analysis.runs import why_not_analysable
from mi_analysis.bench import main as bench_main
from mi_analysis.capture import TOKEN_REDUCTIONS
from mi_analysis.data import dataset_info
from mi_analysis.demo import DemoSettings, run_demo
from mi_analysis.models import build_model
from mi_analysis.models.rules import LOCAL_RULES
from mi_analysis.profiling.costs import forward_flops_per_image, training_step_memory
from mi_analysis.training import Trainer, train
from mi_analysis.training.trainer import TrainingDiverged, read_run_config
from mi_analysis.training.config import DataConfig, ModelConfig, RunConfig
from mi_analysis.training.distributed.launch import launched_by_torchrun, train_parallel
from mi_analysis.training.recipes import EXPERIMENTS, RECIPES, SCALES, default_recipe, experiment, recipe

# Model flags spelled other than --<field-name>; every other ModelConfig field that takes one
# value is --<field-name> (lambdas, four numbers, is set with --set model.lambdas=[...]).
MODEL_FLAG_NAMES = {"num_modules": ("--modules", "-K"), "local_loss": ("--loss",)}
_ONE_VALUE = (bool, int, float, str)


def _model_flags() -> dict[str, tuple[dataclasses.Field, type, tuple[str, ...]]]:
    """flag dest -> (ModelConfig field, its type, flag names), in the field order."""
    hints = typing.get_type_hints(ModelConfig)
    flags = {}
    for field in dataclasses.fields(ModelConfig):
        if hints[field.name] in _ONE_VALUE:
            names = MODEL_FLAG_NAMES.get(field.name, (f"--{field.name.replace('_', '-')}",))
            flags[names[0][2:].replace("-", "_")] = (field, hints[field.name], names)
    return flags


MODEL_FLAGS = _model_flags()

# Flags that map one-to-one onto config fields: flag dest -> dotted config key.
CONFIG_FLAGS = {
    **{dest: f"model.{field.name}" for dest, (field, _, _) in MODEL_FLAGS.items()},
    "dataset": "data.dataset", "root": "data.root", "download": "data.download",
    "val_fraction": "data.val_fraction", "train_subset": "data.train_subset",
    "test_subset": "data.test_subset", "image_size": "data.image_size",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "base_lr": "train.base_lr",
    "seed": "train.seed", "device": "train.device", "bf16": "train.bf16",
    "channels_last": "train.channels_last", "compile": "train.compile",
    "save_epochs": "train.save_epochs", "progress": "train.progress", "out_dir": "out_dir",
}


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ModelConfig field, its help, choices and default read from the field. Flags
    default to None (not given), so a config file or recipe is only overridden by what is typed."""
    for dest, (field, kind, names) in MODEL_FLAGS.items():
        choices = field.metadata["choices"]
        help = field.metadata["help"] + (f": {' | '.join(choices)}" if choices else "")
        help += f" (default: {field.default})"
        if kind is bool:
            p.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help)
        else:
            p.add_argument(*names, dest=dest, type=kind, help=help)


def model_config_from_args(args: argparse.Namespace) -> ModelConfig:
    """ModelConfig of the model flags given, ModelConfig's defaults for the others."""
    return ModelConfig(**{field.name: getattr(args, dest) for dest, (field, _, _) in MODEL_FLAGS.items()
                          if getattr(args, dest) is not None})


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


def config_from_args(args: argparse.Namespace, run_config: RunConfig | None = None) -> RunConfig:
    """Recipe defaults (or `run_config`, the config of a run to resume) < --config file < flags < --set overrides."""
    flags = {key: getattr(args, dest) for dest, key in CONFIG_FLAGS.items() if getattr(args, dest, None) is not None}
    if "train.save_epochs" in flags:
        flags["train.save_epochs"] = list(flags["train.save_epochs"])
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        flags[key] = parse_value(value)
    base = RunConfig.from_yaml(args.config) if args.config else run_config
    dataset = flags.get("data.dataset") or (base.data.dataset if base else DataConfig().dataset)
    if base is None or args.recipe:
        train = recipe(args.recipe or default_recipe(dataset), dataset)
        base = RunConfig(model=base.model if base else ModelConfig(), data=base.data if base else DataConfig(),
                         train=train, out_dir=base.out_dir if base else "runs")
    return base.override(flags)


def cmd_train(args: argparse.Namespace) -> int:
    # with --resume, flags are read over the run's own config: what is not typed keeps the run's value
    config = config_from_args(args, read_run_config(args.resume) if args.resume else None)
    if args.nproc is not None or args.parallel or args.schedule or launched_by_torchrun():
        return train_parallel(config, resume=args.resume, nproc=args.nproc, parallel=args.parallel,
                              schedule=args.schedule, allow_world_size_change=args.allow_world_size_change)
    trainer = (Trainer.resume(args.resume, config, allow_world_size_change=args.allow_world_size_change)
               if args.resume else Trainer.start(config))
    print(f"run directory: {trainer.run_dir}")
    summary = trainer.run()
    print(json.dumps({k: v for k, v in summary.items() if k != "parameters"}, indent=2))
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    info = dataset_info(args.dataset)
    image_size = args.image_size or info.image_size
    model = build_model(model_config_from_args(args), num_classes=info.num_classes,
                        in_channels=info.in_channels, image_size=image_size, dataset=info.name)
    shape = (info.in_channels, image_size, image_size)
    report: dict[str, Any] = {
        **model.describe(),
        "dataset": info.name,
        "input_shape": list(shape),
        "forward_flops_per_image": forward_flops_per_image(model, shape),
    }
    if args.memory_batch is not None:
        report["memory"] = training_step_memory(model, args.memory_batch, shape, info.num_classes)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>24}: {value}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    configs = experiment(args.experiment, scale=args.scale, seeds=tuple(args.seeds), dataset=args.dataset,
                         out_dir=args.out_dir, root=args.root, download=args.download, arch=args.arch)
    print(f"{args.experiment}: {EXPERIMENTS[args.experiment][0]} -- {len(configs)} runs ({args.scale} scale)")
    for i, config in enumerate(configs, 1):
        m = config.model
        line = (f"[{i}/{len(configs)}] {config.data.dataset} {m.arch} K={m.num_modules} {m.context} "
                f"{m.local_loss}{' +decoder' if m.reconstruct else ''} split={m.split} seed={config.train.seed} "
                f"epochs={config.train.epochs} batch={config.train.batch_size}")
        print(line, flush=True)
        if not args.dry_run:
            print(f"    -> {train(config)}", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(DemoSettings) if getattr(args, f.name) is not None}
    settings = DemoSettings(**{name: None if value is _NONE else value for name, value in given.items()})
    run_demo(settings, Path(args.out_dir))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    return bench_main(args.bench_args)


# analyze flags that map one-to-one onto AnalysisConfig fields
ANALYSIS_FLAGS = ("points", "quantities", "y_estimators", "x_estimators", "held_out_size", "fit_size", "seed",
                  "device", "decoder", "pool", "pca_dim", "tokens")


def analysis_config_from_args(args: argparse.Namespace):
    """--config file (or the defaults) < flags."""
    config = AnalysisConfig.from_yaml(args.config) if args.config else AnalysisConfig()
    flags = {field: getattr(args, field) for field in ANALYSIS_FLAGS if getattr(args, field) is not None}
    if "points" in flags:
        flags["points"] = flags["points"][0] if len(flags["points"]) == 1 else tuple(flags["points"])
    for field in ("quantities", "y_estimators", "x_estimators"):
        if field in flags:
            flags[field] = tuple(flags[field])
    return config.replace(**flags)


def _epochs(values: list[str] | None):
    if values is None:
        return None
    if values == ["all"]:
        return "all"
    try:
        return [int(v) for v in values]
    except ValueError:
        raise ValueError(f"--epochs takes 'all' or epoch numbers, got {values}") from None


def cmd_analyze(args: argparse.Namespace) -> int:
    config = analysis_config_from_args(args)
    if args.threads is not None:
        torch.set_num_threads(resolve_threads(args.threads, "--threads"))
    epochs = _epochs(args.epochs)
    kinds = set()
    run_dirs = args.run_dirs
    if len(run_dirs) > 1:  # e.g. runs/*: folders that hold no result are skipped, each with a line
        problems = {run_dir: why_not_analysable(run_dir) for run_dir in run_dirs}
        for run_dir, problem in problems.items():
            if problem is not None:
                print(f"mi-analysis analyze: warning: skipping {run_dir}: {problem}", file=sys.stderr, flush=True)
        run_dirs = [run_dir for run_dir in run_dirs if problems[run_dir] is None]
        if not run_dirs:
            raise ValueError(f"none of the {len(args.run_dirs)} folders is a run that can be analysed (see above)")
    for run_dir in run_dirs:
        table = args.out if args.out is not None else run_dir / "mi.csv"
        rows = analyze_run(run_dir, config, epochs=epochs, out=table)
        kinds |= {(row["quantity"], row["estimator"], row["kind"]) for row in rows}
        print(f"{run_dir}: {len(rows)} rows in {table} (settings: {settings_path(table)})", flush=True)
    print("what each number is: " + "; ".join(f"{q} {e}: {k}" for q, e, k in sorted(kinds)))
    if any(q == "I(h;x)" for q, _, _ in kinds):
        print("I(h;x) of a deterministic network is infinite for continuous x and at most log N on N samples:"
              " its rows are bounds for a noisy h, critic lower bounds, or proxies (mi_analysis/analysis/measure.py)")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    written = make_figures(args.inputs, args.out)
    for path in written:
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    rows = compare(args.inputs, pairs=args.pairs, seeds=args.seeds, out=args.out)
    measured = [row for row in rows if "diff" in row]
    significant = sum(row.get("p_holm", 1.0) < ALPHA for row in measured)
    unpaired = sum(not row["paired"] for row in measured)
    print(f"{len(rows)} rows in {args.out}: {len(measured)} differences ({significant} with Holm-adjusted p < {ALPHA}, "
          f"{unpaired} unpaired), {len(rows) - len(measured)} gaps (see the note column)")
    return 0


_NONE = object()  # a flag's word for None ("all", "native"), kept apart from "not given"


def _int_or(word: str):
    """An argparse type: an integer, or `word` for None."""

    def parse(text: str):
        if text == word:
            return _NONE
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer or {word!r}, got {text!r}") from None

    return parse


class _RenamedFlag(argparse.Action):
    """Stores like its first (current) spelling; a later, older spelling still works and says so."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string != self.option_strings[0]:
            print(f"mi-analysis: {option_string} is deprecated; use {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mi-analysis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run (E2E, GLL or ContSup)")
    _add_train_flags(p)
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N local processes (gloo on the CPU, NCCL with one GPU each); under "
                        "torchrun leave it out")
    p.add_argument("--parallel", choices=("data", "module"),
                   help="with several processes: data (each a shard of every batch; default) or module "
                        "(each a run of consecutive modules, pipelined; needs N <= --modules)")
    p.add_argument("--schedule", choices=("sync", "async"),
                   help="module parallel: sync (one batch in flight per link; default) or async (ranks run "
                        "ahead within a bounded queue); both give the single-process numbers")
    p.add_argument("--allow-world-size-change", action="store_true",
                   help="with --resume: continue over another number of data parallel processes than the run's "
                        "last launch (changes batch-norm statistics; recorded in distributed.json)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("describe", help="parameter counts, cuts, FLOPs and activation memory of a model")
    _add_model_flags(p)
    p.add_argument("--dataset", default="cifar10", help="sets classes, channels and image size")
    p.add_argument("--image-size", type=int)
    p.add_argument("--memory-batch", type=int, metavar="B",
                   help="also measure the activation memory of one training step at batch size B")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("reproduce", help="run (or list with --dry-run) every run of a paper experiment")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--dry-run", action="store_true", help="list the runs without training")
    p.add_argument("--scale", choices=SCALES, default="paper")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="training seeds, distinct, >= 0 (default 0): every run once per seed")
    p.add_argument("--dataset", help="swap the data set (e.g. synthetic, offline) keeping everything else")
    p.add_argument("--arch", help="swap the network (e.g. torchvision:resnet18, package.module:factory) keeping "
                                  "everything else")
    p.add_argument("--root", help="data folder of every run")
    p.add_argument("--download", action="store_true", help="let torchvision download the data sets")
    p.add_argument("--out-dir", default="runs")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("demo", help="offline: train E2E, GLL and ContSup, analyse, plot, summarise (CPU, minutes)")
    p.add_argument("--dataset", help="fashion_mnist_subset (default, bundled) or another registered set, e.g. digits")
    p.add_argument("--root", help="data folder, e.g. /usr/share/datasets/fashion-mnist")
    p.add_argument("--arch", help="default resnet32")
    p.add_argument("--modules", "-K", dest="num_modules", type=int, help="K of the local runs (default 8)")
    p.add_argument("--aux-head", help="local heads (default 0c1f)")
    p.add_argument("--epochs", type=int, help="default 4")
    p.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+",
                   help="training seeds, distinct, >= 0 (default 0); every mode is trained once per seed")
    p.add_argument("--image-size", type=_int_or("native"), help="resize the images to this size (default 16; 'native')")
    p.add_argument("--held-out-size", "--probe-size", dest="held_out_size", type=int, action=_RenamedFlag,
                   help="held-out samples from the test split (default: all)")
    p.add_argument("--train-subset", type=_int_or("all"),
                   help="train on a seeded, stratified subset of this many images (default 3000; 'all')")
    p.add_argument("--rules", nargs="+", choices=LOCAL_RULES[1:], metavar="RULE",
                   help=f"also train R0 under these local-learning rules ({', '.join(LOCAL_RULES[1:])}) and compare "
                        "them with GLL and E2E (default: none)")
    p.add_argument("--out-dir", default="runs/demo")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("analyze", help="per-layer I(h;x) and I(h;y) of trained runs -> mi.csv")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--config", type=Path, help="YAML AnalysisConfig (flags override it)")
    p.add_argument("--epochs", nargs="+", metavar="all|N", help="'all' saved epochs or epoch numbers (default: last)")
    p.add_argument("--points", nargs="+", metavar="boundaries|all|NAME",
                   help="module boundaries (default), every tap, or tap names")
    p.add_argument("--quantities", nargs="+", choices=["x", "y", "I(h;x)", "I(h;y)"], help="default: both")
    p.add_argument("--y-estimators", nargs="+", metavar="METHOD",
                   help="I(h;y) methods (default probe_linear mixed_knn)")
    p.add_argument("--x-estimators", nargs="+", metavar="METHOD",
                   help="I(h;x) methods: reconstruction, kde_upper, infonce, ... (default reconstruction kde_upper)")
    p.add_argument("--held-out-size", "--probe-size", dest="held_out_size", type=int, action=_RenamedFlag,
                   help="samples of the test split in the held-out set (default: all)")
    p.add_argument("--fit-size", type=int, help="training-split samples for PCA and decoders (default 2000)")
    p.add_argument("--seed", type=int, help="held-out/fitting draws and estimator seeds")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--decoder", choices=["linear", "mlp"], help="reconstruction decoder")
    p.add_argument("--pool", type=int, help="average-pool activations to POOL x POOL before PCA")
    p.add_argument("--pca-dim", type=int, help="PCA dims of each point for the estimators")
    p.add_argument("--tokens", choices=TOKEN_REDUCTIONS,
                   help="token activations (T, C): pool (to POOL*POOL tokens, default), mean, cls or flatten")
    p.add_argument("--out", type=Path, help="the table to write (default RUN_DIR/mi.csv)")
    p.add_argument("--threads", type=int, help="the most CPU threads of capture, fitting and the estimators "
                                               "(default: torch's); capture and estimators take the cores "
                                               "left free")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("compare", help="paired differences of modes (95%% CI, Holm p, recovered fraction) -> csv")
    p.add_argument("inputs", nargs="+", type=Path, metavar="RUNS_OR_MI_CSV")
    p.add_argument("--out", type=Path, default=Path("comparisons.csv"), help="default comparisons.csv")
    p.add_argument("--pairs", nargs="+", metavar="A:B",
                   help="modes to compare as A - B (default R0:E2E and every other mode:R0)")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S",
                   help="training seeds to pair (seed i of A with seed i of B; each must exist on both sides)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="figures (PNG + PDF) from run folders, mi.csv and comparisons.csv tables")
    p.add_argument("inputs", nargs="+", type=Path, metavar="RUNS_ROOT_OR_CSV")
    p.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("bench", help="benchmarks: memory, train, estimators (see `mi-analysis bench -h`)",
                       add_help=False)
    p.set_defaults(func=cmd_bench)  # its own arguments (and --help) go to mi_analysis.bench
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.func(args)
    except TrainingDiverged as err:  # the run is marked failed; not a usage error
        print(f"mi-analysis {args.command}: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, KeyError, OSError) as err:  # bad input: a flag, a file, a folder (OSError names it)
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"mi-analysis {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - a bug: the traceback, and where to report it
        traceback.print_exc()
        print(f"mi-analysis {args.command}: internal error (a bug in mi_analysis, not in your input); please "
              "report it with the command line and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
