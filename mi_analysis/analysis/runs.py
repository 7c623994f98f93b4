"""Entry points: analyze_run (a trained run directory), analyze_model (any nn.Module), collect_runs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mi_analysis.capture import gather, resolve_taps
from mi_analysis.capture.taps import declared_tap_names
from mi_analysis.models import Tap
from mi_analysis.training.config import RunConfig
from mi_analysis.data import load_splits, normalize
from mi_analysis._util.files import read_csv
from mi_analysis._util.device import resolve_device
from mi_analysis.models import E2E, LocalNet
from mi_analysis.training.checkpoints import load_checkpoint
from mi_analysis.training.trainer import failure_of, load_run

from .engine import SampleSets, measure_model, requested_keys
from .samples import sample_set_id, write_terms
from .settings import POINT_SETS, AnalysisConfig
from .table import MI_COLUMNS, MiTable, format_value, read_rows, row_key

INT_COLUMNS = ("K", "seed", "epoch", "depth", "module", "n")
FLOAT_COLUMNS = ("value", "ci_low", "ci_high")


# ---------------------------------------------------------------- points


def select_points(model: nn.Module, points: str | Sequence[str]) -> list[Tap]:
    """The taps to measure, in depth order for a LocalNet (points may be "boundaries", "all" or names)
    and in the given order for any other module (names from named_modules(), depth = position)."""
    declared = declared_tap_names(model)
    if declared is None:
        if isinstance(points, str) and points in POINT_SETS:
            modules = [name for name, _ in model.named_modules() if name]
            raise ValueError(
                f"points={points!r} needs a LocalNet; for a {type(model).__name__} pass names from "
                f"named_modules(): {modules}"
            )
        return resolve_taps(model, points)
    if points == "all":
        names = list(declared)
    elif points == "boundaries":
        names = boundary_points(model)
    else:
        names = points
    return sorted(resolve_taps(model, names), key=lambda tap: tap.depth)


def boundary_points(model: nn.Module) -> list[str]:
    """Module boundaries of a LocalNet: every module input "m{k}.in" and the output of the last unit of
    every module. An E2E net (one module) has no cuts: there, every unit output."""
    if model.num_modules == 1:
        return list(model.unit_names)
    ends = {model.unit_names[c] for c in (*model.cuts, len(model.unit_names) - 1)}
    return [name for name in model.taps if name in ends or name.endswith(".in")]


# ---------------------------------------------------------------- a run directory


def analyze_run(
    run_dir: str | Path,
    config: AnalysisConfig = AnalysisConfig(),
    *,
    epochs: None | str | Sequence[int] = None,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Per-layer I(h;y) and I(h;x) of a trained run, appended to mi.csv; returns this call's rows.

    run_dir: a run directory (config.yaml, checkpoints/). epochs: None (the last checkpoint),
        "all" (every saved epoch_XXX.pt and the last), or a list of epoch numbers.
    out: the table (default <run_dir>/mi.csv); its settings are kept beside it (analysis.yaml).
    Held-out set: config.held_out_size samples of the run's test split (which training never selects on),
    drawn with config.seed; fitting set (PCA, decoders): up to config.fit_size samples of the
    run's training split. Rows already in the table for (run, epoch, point, quantity, estimator)
    are not recomputed and never rewritten; the returned list holds them too (as read back).
    """
    run_dir = Path(run_dir)
    run_config = _run_config(run_dir)
    checkpoints = _checkpoints(run_dir, epochs)
    table = MiTable(out if out is not None else run_dir / "mi.csv", config)
    device = resolve_device(config.device)
    m = run_config.model
    data, rows, requested = None, [], set()
    for epoch, checkpoint_epoch in checkpoints:
        base = {"run": run_dir.name, "mode": m.mode, "K": m.num_modules, "rule": m.local_rule,
                "seed": run_config.train.seed, "epoch": epoch}  # fmt: skip
        model, _ = load_run(run_dir, checkpoint_epoch, device=str(device))
        points = select_points(model, config.points)  # unknown names fail before any data is loaded
        requested |= requested_keys(base, points, config)
        data = data or _run_samples(run_config, config)

        def store_terms(point: str, terms: dict, epoch: int = epoch) -> None:
            write_terms(table.path, run_dir.name, epoch, point, data.held_out_ids, terms)

        rows += measure_model(model, points, data, config, base, device, done=table.done, emit=table.append,
                              emit_terms=store_terms)  # fmt: skip
    return _this_call(table, requested, rows)


def why_not_analysable(run_dir: str | Path) -> str | None:
    """Why analyze_run would refuse `run_dir` before measuring anything (not a run directory, nothing
    trained, a failed or diverged run, a damaged checkpoint), or None: to skip such folders among many."""
    try:
        _run_config(Path(run_dir))
        _checkpoints(Path(run_dir), None)
    except (ValueError, FileNotFoundError) as err:
        return str(err)
    return None


def _run_config(run_dir: Path) -> RunConfig:
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir} is not a run directory: it has no config.yaml")
    failure = failure_of(run_dir)
    if failure is not None:
        raise ValueError(f"run {run_dir} failed, its weights are no result: {failure}")
    return RunConfig.from_yaml(run_dir / "config.yaml")


def _checkpoints(run_dir: Path, epochs: None | str | Sequence[int]) -> list[tuple[int, int | None]]:
    """(epoch, argument for load_run) for each epoch to analyse; load_run(None) is last.pt."""
    folder = run_dir / "checkpoints"
    last_path = folder / "last.pt"
    if not last_path.is_file():
        raise FileNotFoundError(f"run directory {run_dir} has no checkpoints/last.pt: nothing trained to analyse")
    state = load_checkpoint(last_path, "cpu")
    diverged = [row["epoch"] for row in state["metrics"] if not math.isfinite(float(row.get("train_loss", 0.0)))]
    if diverged:  # a run of a version that did not stop on a non-finite loss
        raise ValueError(f"run {run_dir} diverged: its training loss is not finite from epoch {diverged[0]} on, "
                         "so its weights are no result")
    last = int(state["epoch"])
    saved = (int(path.stem.removeprefix("epoch_")) for path in folder.glob("epoch_[0-9][0-9][0-9].pt"))
    available = {**{epoch: epoch for epoch in saved}, last: None}  # epoch -> load_run's epoch argument
    if epochs is None:
        return [(last, None)]
    if epochs == "all":
        return sorted(available.items())
    if isinstance(epochs, str) or not isinstance(epochs, Iterable):
        raise ValueError(f"epochs must be None, 'all' or a list of epoch numbers, got {epochs!r}")
    missing = [e for e in epochs if e not in available]
    if missing:
        raise ValueError(f"epochs {missing} have no checkpoint in {run_dir}; available epochs: {sorted(available)}")
    return [(e, available[e]) for e in sorted(set(epochs))]


def _run_samples(run: RunConfig, config: AnalysisConfig) -> SampleSets:
    """Held-out set from the run's test split, fitting set from its training split, as the model sees them."""
    d = run.data
    splits = load_splits(
        d.dataset, d.root, download=False, val_fraction=d.val_fraction, seed=run.train.seed,
        train_subset=d.train_subset, test_subset=d.test_subset, image_size=d.image_size,
    )  # fmt: skip
    test, train = splits.test, splits.train
    if config.held_out_size is not None and config.held_out_size > len(test):
        raise ValueError(
            f"held_out_size={config.held_out_size} is larger than the {len(test)} images of the {d.dataset} test split "
            "the held-out set is drawn from; choose held_out_size <= that (or None for all)"
        )
    held_out = _draw(len(test), config.held_out_size, config.seed)
    fit = _draw(len(train), config.fit_size, config.seed + 1)
    ids = splits.test_indices[held_out]  # positions in the data set's full test set
    return SampleSets(
        fit_x=normalize(train.images[fit], splits.info),
        held_out_x=normalize(test.images[held_out], splits.info),
        labels=test.labels[held_out],
        target_fit=train.images[fit].float().div(255).flatten(1),  # un-normalised pixels, 0..1
        target_held_out=test.images[held_out].float().div(255).flatten(1),
        held_out_ids=ids,
        sample_set=sample_set_id(f"{d.dataset}:{d.image_size}:test", ids),
    )


def _draw(n: int, size: int | None, seed: int) -> Tensor:
    """Indices of a seeded random subset of min(size, n) of range(n) (all of them for None)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order if size is None else order[:size]


def _this_call(table: MiTable, requested: set[tuple[str, ...]], computed: list[dict]) -> list[dict[str, Any]]:
    """The rows this call asked for: those found in the table (typed, in table order), then those
    computed; every row's keys in MI_COLUMNS order, so a resumed call returns what the first one did."""
    fresh = {row_key({k: format_value(v) for k, v in row.items()}) for row in computed}
    earlier = [
        typed_row(row) for row in (read_rows(table.path) if table.path.exists() else [])
        if row_key(row) in requested and row_key(row) not in fresh
    ]  # fmt: skip
    return earlier + [{column: row[column] for column in MI_COLUMNS} for row in computed]


def typed_row(row: Mapping[str, str]) -> dict[str, Any]:
    """An mi.csv row read as text, with numbers as int / float ('' as None)."""
    out: dict[str, Any] = {}
    for column in MI_COLUMNS:
        text = row.get(column, "")  # columns an earlier table format lacks read as empty
        if column in INT_COLUMNS:
            out[column] = int(text) if text != "" else None
        elif column in FLOAT_COLUMNS:
            out[column] = float(text)
        else:
            out[column] = text
    return out


# ---------------------------------------------------------------- any model


def analyze_model(
    model: nn.Module,
    data: Any,
    points: str | Sequence[str] | None = None,
    *,
    labels: Any = None,
    config: AnalysisConfig = AnalysisConfig(),
    fit_data: Any = None,
    target: Callable[[Tensor], Tensor] | None = None,
    run: str | None = None,
    epoch: int = 0,
) -> list[dict[str, Any]]:
    """I(h;y) and I(h;x) at named points of any nn.Module, without training; returns mi.csv rows.

    data: an (x, y) pair of tensors/arrays, a tensor x with `labels`, or an iterable of (x, y)
        batches (a DataLoader). points: names from model.named_modules() (for a LocalNet also
        "boundaries", "all" or tap names); default config.points.
    fit_data: the fitting set for the PCA bases and decoders, in the same forms; by default a
        seeded part of `data` (the held-out set is config.held_out_size samples, default half of them).
    target: maps inputs x to what the decoder reconstructs (e.g. un-normalised pixels); default x.
    run, epoch: the run and epoch columns (default the model's class name and 0). Rows have mode
        "E2E" and K=1, except for a LocalNet (its context mode and K); seed is empty.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    chosen = select_points(model, config.points if points is None else points)
    x, y = _materialize(data, labels, "data")
    if fit_data is None:
        n_held_out = config.held_out_size if config.held_out_size is not None else len(x) // 2
        if n_held_out >= len(x):
            raise ValueError(
                f"held_out_size={n_held_out} leaves none of the {len(x)} samples of data for fitting; choose a smaller "
                "held_out_size or pass fit_data"
            )
        order = _draw(len(x), None, config.seed)
        held_out, rest = order[:n_held_out], order[n_held_out:]
        fit_x = x[rest[: config.fit_size]]
    else:
        if config.held_out_size is not None and config.held_out_size > len(x):
            raise ValueError(f"held_out_size={config.held_out_size} is larger than the {len(x)} samples of data")
        held_out = _draw(len(x), config.held_out_size, config.seed)
        fit_x, _ = _materialize(fit_data, None, "fit_data", need_labels=False)
        fit_x = fit_x[_draw(len(fit_x), config.fit_size, config.seed + 1)]
    held_out_x = x[held_out]
    target = target or (lambda inputs: inputs)
    samples = SampleSets(fit_x, held_out_x, y[held_out], target(fit_x).flatten(1), target(held_out_x).flatten(1),
                         held_out_ids=held_out, sample_set=sample_set_id("data", held_out))
    k = getattr(model, "num_modules", 1)
    mode = model.mode if isinstance(model, LocalNet) else E2E
    rule = model.local_rule if isinstance(model, LocalNet) else "gll"
    base = {"run": run or type(model).__name__, "mode": mode, "K": k, "rule": rule, "seed": None, "epoch": epoch}
    device = resolve_device(config.device)
    return measure_model(model, chosen, samples, config, base, device)


def _materialize(data: Any, labels: Any, name: str, *, need_labels: bool = True) -> tuple[Tensor, Tensor | None]:
    """(x, y) on the CPU from an (x, y) pair, a tensor x (with `labels`), or an iterable of x or (x, y)
    batches. y is None only when labels are not needed (the fitting set)."""
    if labels is not None and isinstance(data, (Tensor, np.ndarray)):
        data = (data, labels)
    x, y = gather(data, name)
    if not need_labels:
        return x, None
    if y is None:
        raise ValueError(f"{name} yields no labels: pass labels= (int class labels, one per sample) with a tensor "
                         "x, or (x, y) tensors, or (x, y) batches")
    if y.dim() != 1 or y.is_floating_point():
        raise ValueError(f"{name} labels must be integer class labels of shape (n,), got {y.dtype} {tuple(y.shape)}")
    return x, y.long()


# ---------------------------------------------------------------- run summaries


def collect_runs(root: str | Path) -> list[dict[str, Any]]:
    """One summary row per run directory under `root` (or `root` itself), for the accuracy, memory
    and local-head plots: run, path, dataset, arch, mode ("E2E" for K=1), K, context, local_loss, seed,
    epochs (done), test_acc and val_acc (last evaluated epoch), best_val_acc and test_acc_at_best_val
    (the epoch chosen on validation, never on test), peak_memory_bytes (max over epochs), and
    acc_m0 .. acc_m{K-1} (local-head training accuracy at the last epoch). Missing numbers are NaN."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs root {root} is not a directory")
    found = sorted(p.parent for p in root.rglob("config.yaml") if (p.parent / "metrics.csv").is_file())
    failed = [run_dir for run_dir in found if failure_of(run_dir) is not None]
    for run_dir in failed:
        warnings.warn(f"skipping run {run_dir}: it failed ({failure_of(run_dir)})", stacklevel=2)
    return [_summary(run_dir) for run_dir in found if run_dir not in failed]


def _summary(run_dir: Path) -> dict[str, Any]:
    config = RunConfig.from_yaml(run_dir / "config.yaml")
    rows = read_csv(run_dir / "metrics.csv")
    m = config.model
    evaluated = [r for r in rows if _finite_float(r.get("test_acc")) is not None]
    final = evaluated[-1] if evaluated else {}
    with_val = [r for r in evaluated if _finite_float(r.get("val_acc")) is not None]
    best = max(with_val, key=lambda r: _finite_float(r["val_acc"])) if with_val else {}
    memory = [v for v in (_finite_float(r.get("peak_memory_bytes")) for r in rows) if v is not None]
    summary = {
        "run": run_dir.name, "path": str(run_dir), "dataset": config.data.dataset, "arch": m.arch,
        "mode": m.mode, "K": m.num_modules, "context": m.context, "local_rule": m.local_rule,
        "local_loss": m.local_loss, "seed": config.train.seed, "epochs": int(rows[-1]["epoch"]) if rows else 0,
        "test_acc": _nan(final.get("test_acc")), "val_acc": _nan(final.get("val_acc")),
        "best_val_acc": _nan(best.get("val_acc")), "test_acc_at_best_val": _nan(best.get("test_acc")),
        "peak_memory_bytes": max(memory) if memory else math.nan,
    }  # fmt: skip
    last = rows[-1] if rows else {}
    summary.update({f"acc_m{k}": _nan(last.get(f"acc_m{k}")) for k in range(m.num_modules)})
    return summary


def _finite_float(text: Any) -> float | None:
    """A csv cell as a finite float, None when it is empty, not a number, inf or nan."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _nan(text: Any) -> float:
    value = _finite_float(text)
    return math.nan if value is None else value
