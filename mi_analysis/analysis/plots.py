"""Figures from the tables: pure functions table -> matplotlib Figure.

Tables are mi.csv, metrics.csv and per-run summaries (columns in docs/architecture.md), given
as a path to a CSV file or as a list of dicts (values may be strings, as csv gives them, or
numbers). Every plot function takes an optional axes to draw into and returns the Figure; none
shows or saves anything (save_figure writes PNG and PDF). Figures are matplotlib.figure.Figure
objects made without pyplot, so they work under the Agg backend and display in notebooks.

Artists carry a gid so that notebooks and tests can find them: "curve:<mode>:K<K>",
"band:<mode>:K<K>", "boundary:K<K>", "layer:<point>", "e2e", "e2e-band".
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from mi_analysis._util.files import read_csv
from mi_analysis.models.config import label_of, run_label

from .comparisons import GLL, layer_position
from .paired import stderr_from_ci
from .report import summary_estimators
from .seeds import seed_mean
from .settings import QUANTITIES
from .table import MI_COLUMNS

__all__ = [
    "QUANTITIES",
    "MODE_COLORS",
    "read_table",
    "mode_label",
    "mode_color",
    "plot_information_along_depth",
    "plot_information_panel",
    "plot_information_plane",
    "plot_accuracy_vs_k",
    "plot_memory_vs_k",
    "plot_local_accuracy",
    "plot_differences",
    "save_figure",
]

# The mi.csv columns the figures draw from; rows without seed, n, sample_set and notes (e.g. built by
# hand, or tables of an earlier format) plot too.
PLOTTED_COLUMNS = tuple(column for column in MI_COLUMNS if column not in ("seed", "n", "sample_set", "notes", "rule"))

# One colour per mode in every figure; the order is the legend order.
MODE_COLORS = {
    "E2E": "black",
    "R0": "tab:red",
    "E": "tab:blue",
    "R1": "tab:green",
    "R1E": "tab:purple",
    "R2": "tab:orange",
    "R2E": "tab:brown",
    "R4": "tab:olive",
    "R4E": "tab:pink",
    "R8": "tab:cyan",
    "R8E": "darkgoldenrod",
    "R16": "tab:gray",
    "R16E": "navy",
}
# labels outside MODE_COLORS (rules: "R0@auglocal"); no red, since R0, which rules are compared with, is red
_SPARE_COLORS = ("teal", "indigo", "darkorange", "darkgreen", "sienna", "slateblue")
_K_STYLES = ("-", "--", "-.", ":")
LABEL_SIZE = 11
TICK_SIZE = 9
LEGEND_SIZE = 9


# ---------------------------------------------------------------- tables


read_table = read_csv  # the rows of a CSV file as dicts of strings


def _rows(table: Any, name: str, columns: Sequence[str]) -> list[dict[str, Any]]:
    """A table (path or iterable of dicts) as a non-empty list of dicts holding every column in `columns`."""
    if isinstance(table, (str, os.PathLike)):
        rows = read_table(table)
    elif isinstance(table, Iterable) and not isinstance(table, Mapping):
        rows = list(table)
        if not all(isinstance(row, Mapping) for row in rows):
            raise TypeError(f"{name} must be a CSV path or a list of dicts (rows)")
    else:
        raise TypeError(f"{name} must be a CSV path or a list of dicts (rows), got {type(table).__name__}")
    if not rows:
        raise ValueError(f"{name} is empty: no rows to plot")
    missing = sorted({column for row in rows for column in columns if column not in row})
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")
    return rows


def _float(row: Mapping[str, Any], column: str, name: str) -> float:
    value = row[column]
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} column {column!r} holds {value!r}, not a number") from None


def _int(row: Mapping[str, Any], column: str, name: str) -> int:
    value = _float(row, column, name)
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} column {column!r} holds {row[column]!r}, not an integer")
    return int(value)


RULE_NAMES = {"auglocal": "AugLocal", "man": "MAN"}


def _mode_order(mode: str) -> tuple[int, str]:
    order = list(MODE_COLORS)
    return (order.index(mode), "") if mode in order else (len(order), mode)


def mode_label(mode: str) -> str:
    """Legend name of a mode: "E2E", "GLL (R0)", "ContSup (E)", ...; a run label with a rule other
    than gll: "AugLocal (R0)", "MAN (E)", ..."""
    if "@" in mode:
        context, rule = mode.split("@", 1)
        return f"{RULE_NAMES.get(rule, rule)} ({context})"
    if mode == "E2E":
        return "E2E"
    if mode == "R0":
        return "GLL (R0)"
    return f"ContSup ({mode})"


def mode_color(mode: str) -> str:
    """The colour of a mode, the same in every figure."""
    if mode in MODE_COLORS:
        return MODE_COLORS[mode]
    return _SPARE_COLORS[sum(map(ord, mode)) % len(_SPARE_COLORS)]  # stable across runs, unlike hash()


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.get_figure(root=True), ax
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def _style_axes(ax: Axes, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.set_title(title, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE)
    ax.grid(True, alpha=0.3)


def _k_suffix(k: int, several: bool) -> str:
    return f", K={k}" if several else ""


# ---------------------------------------------------------------- mutual information


def _mi_rows(mi_rows: Any) -> list[dict[str, Any]]:
    rows = _rows(mi_rows, "mi_rows", PLOTTED_COLUMNS)
    name = "mi_rows"
    return [
        {
            "run": str(row["run"]),
            "seed": str(row.get("seed", "")),
            "mode": run_label(_int(row, "K", name), str(row["mode"]), str(row.get("rule") or "gll")),
            "K": _int(row, "K", name),
            "epoch": _int(row, "epoch", name),
            "point": str(row["point"]),
            "depth": _int(row, "depth", name),
            "module": _int(row, "module", name),
            "quantity": str(row["quantity"]),
            "estimator": str(row["estimator"]),
            "kind": str(row["kind"]),
            "value": _float(row, "value", name),
            "ci_low": _float(row, "ci_low", name),
            "ci_high": _float(row, "ci_high", name),
        }
        for row in rows
    ]


def _select(rows: list[dict], quantity: str, estimator: str | None, epoch: int | None) -> tuple[list[dict], str]:
    """Rows of one quantity and one estimator at one epoch per run (its last, unless `epoch` is given)."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; valid: {list(QUANTITIES)}")
    rows = [row for row in rows if row["quantity"] == quantity]
    if not rows:
        raise ValueError(f"mi_rows has no rows for quantity {quantity!r}")
    estimators = sorted({row["estimator"] for row in rows})
    if estimator is None:
        if len(estimators) > 1:
            raise ValueError(f"mi_rows has several estimators for {quantity}: {estimators}; pass estimator=")
        estimator = estimators[0]
    elif estimator not in estimators:
        raise ValueError(f"mi_rows has no {quantity} rows from estimator {estimator!r}; it has {estimators}")
    rows = [row for row in rows if row["estimator"] == estimator]
    if epoch is None:
        last = defaultdict(int)
        for row in rows:
            last[row["run"]] = max(last[row["run"]], row["epoch"])
        selected = [row for row in rows if row["epoch"] == last[row["run"]]]
    else:
        selected = [row for row in rows if row["epoch"] == epoch]
        if not selected:
            epochs = sorted({row["epoch"] for row in rows})
            raise ValueError(f"mi_rows has no {quantity} rows at epoch {epoch}; epochs: {epochs}")
    seen = set()
    for row in selected:
        key = (row["run"], row["point"], row["epoch"])
        if key in seen:
            run, point, at = key
            what = f"{quantity} {estimator} rows for run {run!r}, point {point!r}, epoch {at}"
            raise ValueError(f"mi_rows has duplicate {what}")
        seen.add(key)
    return selected, estimator


def _is_module_input(row: Mapping[str, Any]) -> bool:
    return row["point"] == f"m{row['module']}.in"


def _layer_x(row: Mapping[str, Any]) -> float:
    """Position along the depth that lines up the same layer across K.

    A unit output sits at its flat unit index, depth - module (module k has k "m{j}.in" points before
    its units); the context-augmented input of module k sits half a step after the last unit of
    module k-1, i.e. on the cut. E2E (one module) has x = depth.
    """
    return layer_position(row["point"], row["depth"], row["module"])


def _kind_text(rows: Iterable[Mapping[str, Any]]) -> str:
    return " / ".join(sorted({row["kind"].replace("_", " ") for row in rows}))


def plot_information_along_depth(
    mi_rows: Any,
    quantity: str = "I(h;y)",
    estimator: str | None = None,
    ax: Axes | None = None,
    *,
    K: int | None = None,
    epoch: int | None = None,
    seed_bands: bool = False,
) -> Figure:
    """`quantity` (nats) per layer for every (mode, K) in mi_rows, with its CI shaded.

    x is the layer (flat unit index, so the same layer lines up across K); the context-augmented
    input "m{k}.in" of module k sits on the cut, half a step after the last unit of module k-1,
    where a vertical line marks the module boundary (one line style per K). Each run is taken at
    its last epoch (or at `epoch`); runs of the same (mode, K) (seeds) are averaged, and the band
    spans from the lowest ci_low to the highest ci_high among them. seed_bands: overlay, darker, the
    95% CI of the mean over seeds where a layer has rows of 2 or more seeds (seeds.seed_mean: seed-to-
    seed and sample variation together). `K` keeps E2E and the local runs with that K. `estimator` may
    be left out when the table has one for `quantity`.
    """
    rows, estimator = _select(_mi_rows(mi_rows), quantity, estimator, epoch)
    local_ks = sorted({row["K"] for row in rows if row["K"] > 1})
    if K is not None:
        if K not in local_ks:
            raise ValueError(f"mi_rows has no {quantity} rows for K={K}; local K values: {local_ks}")
        rows = [row for row in rows if row["K"] in (1, K)]
        local_ks = [K]
    several = len(local_ks) > 1
    figure, ax = _figure_and_axes(ax, (6.4, 4.2))

    curves: dict[tuple[str, int], dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        curves[(row["mode"], row["K"])][_layer_x(row)].append(row)
    for mode, k in sorted(curves, key=lambda key: (_mode_order(key[0]), key[1])):
        points = curves[(mode, k)]
        xs = sorted(points)
        values = [float(np.mean([r["value"] for r in points[x]])) for x in xs]
        lows = [min(r["ci_low"] for r in points[x]) for x in xs]
        highs = [max(r["ci_high"] for r in points[x]) for x in xs]
        color = mode_color(mode)
        style = "-" if k == 1 else _K_STYLES[local_ks.index(k) % len(_K_STYLES)]
        ax.fill_between(xs, lows, highs, color=color, alpha=0.15, linewidth=0, gid=f"band:{mode}:K{k}")
        if seed_bands:
            _seed_band(ax, points, xs, color, gid=f"seedband:{mode}:K{k}")
        label = mode_label(mode) + _k_suffix(k, several)
        gid = f"curve:{mode}:K{k}"
        ax.plot(xs, values, color=color, linestyle=style, marker="o", markersize=3, label=label, gid=gid)

    for i, k in enumerate(local_ks):
        for j, x in enumerate(_module_boundaries([row for row in rows if row["K"] == k])):
            label = f"module boundaries (K={k})" if j == 0 else "_nolegend_"
            style = _K_STYLES[i % len(_K_STYLES)]
            ax.axvline(x, color="0.5", linewidth=0.8, linestyle=style, label=label, gid=f"boundary:K{k}")

    _unit_ticks(ax, rows)
    _style_axes(
        ax,
        "layer (unit; module inputs sit on the cuts)",
        f"{quantity} [nats], {_kind_text(rows)}: {estimator}",
        f"{quantity} along the depth",
    )
    ax.legend(fontsize=LEGEND_SIZE)
    return figure


def _seed_band(ax: Axes, points: Mapping[float, list[dict]], xs: list[float], color: str, gid: str) -> None:
    """The 95% CI of the mean over seeds at every x with rows of >= 2 distinct seeds (gaps elsewhere)."""
    lows, highs = [], []
    for x in xs:
        rows = points[x]
        if len({row["seed"] for row in rows}) < 2 or len(rows) != len({row["seed"] for row in rows}):
            lows.append(math.nan)
            highs.append(math.nan)
            continue
        agg = seed_mean([r["value"] for r in rows], [stderr_from_ci(r["ci_low"], r["ci_high"]) for r in rows])
        lows.append(agg.ci_low)
        highs.append(agg.ci_high)
    if not all(math.isnan(v) for v in lows):
        ax.fill_between(xs, lows, highs, color=color, alpha=0.3, linewidth=0, gid=gid)


def _module_boundaries(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    """x of each cut: halfway between the last unit of module k-1 and the first unit of module k."""
    first_x: dict[int, float] = {}
    for row in rows:
        if row["module"] > 0:
            first_x[row["module"]] = min(first_x.get(row["module"], math.inf), _layer_x(row))
    # the first point of module k is "m{k}.in" (on the cut) or, if it was not measured, a unit output
    # one half step further: flooring to the half step below gives the cut in both cases
    return sorted(math.floor(x - 0.5) + 0.5 for x in first_x.values())


def _unit_ticks(ax: Axes, rows: Iterable[Mapping[str, Any]]) -> None:
    """Integer ticks named after the unit outputs (stem, s1.b0, ...)."""
    names = {_layer_x(row): row["point"] for row in rows if not _is_module_input(row)}
    xs = sorted(names)
    ax.xaxis.set_major_locator(FixedLocator(xs))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([names[x] for x in xs], rotation=90 if len(xs) > 6 else 0)


def plot_information_panel(
    mi_rows: Any,
    *,
    x_estimator: str | None = None,
    y_estimator: str | None = None,
    K: int | None = None,
    epoch: int | None = None,
    seed_bands: bool = False,
) -> Figure:
    """I(h;x) and I(h;y) along the depth side by side (plot_information_along_depth twice)."""
    rows = _mi_rows(mi_rows)
    figure = Figure(figsize=(12, 4.4), layout="constrained")
    left, right = figure.subplots(1, 2)
    plot_information_along_depth(rows, "I(h;x)", x_estimator, left, K=K, epoch=epoch, seed_bands=seed_bands)
    plot_information_along_depth(rows, "I(h;y)", y_estimator, right, K=K, epoch=epoch, seed_bands=seed_bands)
    left.get_legend().remove()  # the same entries as on the right
    return figure


def plot_information_plane(
    mi_rows: Any,
    mode: str | None = None,
    *,
    K: int | None = None,
    x_estimator: str | None = None,
    y_estimator: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """I(h;x) against I(h;y) (nats) for every layer of one (mode, K) across the epochs.

    One line per layer (gid "layer:<point>") joins its epochs in order and is coloured by depth;
    the last epoch is marked larger. Runs of the same (mode, K) (seeds) are averaged per epoch.
    `mode` and `K` may be left out when the table has one of each.
    """
    rows = _mi_rows(mi_rows)
    mode = _only_or_given(sorted({row["mode"] for row in rows}, key=_mode_order), mode, "mode")
    rows = [row for row in rows if row["mode"] == mode]
    K = _only_or_given(sorted({row["K"] for row in rows}), K, "K", f"mode {mode!r}")
    rows = [row for row in rows if row["K"] == K]
    x_rows, x_estimator = _select_all_epochs(rows, "I(h;x)", x_estimator)
    y_rows, y_estimator = _select_all_epochs(rows, "I(h;y)", y_estimator)

    def averaged(selected: list[dict]) -> dict[tuple[str, int], float]:
        groups = defaultdict(list)
        for row in selected:
            groups[(row["point"], row["epoch"])].append(row["value"])
        return {key: float(np.mean(values)) for key, values in groups.items()}

    ix, iy = averaged(x_rows), averaged(y_rows)
    depth = {row["point"]: row["depth"] for row in rows}
    keys = sorted(set(ix) & set(iy), key=lambda key: (depth[key[0]], key[1]))
    if not keys:
        raise ValueError(f"mi_rows has no (point, epoch) with both I(h;x) and I(h;y) for mode {mode!r}, K={K}")
    figure, ax = _figure_and_axes(ax, (6.4, 4.8))
    norm = Normalize(min(depth.values()), max(max(depth.values()), min(depth.values()) + 1))
    cmap = colormaps["viridis"]
    for point in sorted({key[0] for key in keys}, key=depth.get):
        epochs = [key[1] for key in keys if key[0] == point]
        xs = [ix[(point, e)] for e in epochs]
        ys = [iy[(point, e)] for e in epochs]
        color = cmap(norm(depth[point]))
        ax.plot(xs, ys, color=color, marker="o", markersize=3, linewidth=1, gid=f"layer:{point}")
        ax.plot(xs[-1], ys[-1], color=color, marker="o", markersize=8, markeredgecolor="black", gid=f"last:{point}")
    colorbar = figure.colorbar(ScalarMappable(norm, cmap), ax=ax)
    colorbar.set_label("depth index", fontsize=LABEL_SIZE)
    _style_axes(
        ax,
        f"I(h;x) [nats], {_kind_text(x_rows)}: {x_estimator}",
        f"I(h;y) [nats], {_kind_text(y_rows)}: {y_estimator}",
        f"information plane, {mode_label(mode)}{'' if K == 1 else f', K={K}'} (big dot: last epoch)",
    )
    return figure


def _only_or_given(values: list, given: Any, name: str, where: str = "mi_rows") -> Any:
    if given is None:
        if len(values) > 1:
            raise ValueError(f"{where} has several {name} values {values}; pass {name}=")
        return values[0]
    if given not in values:
        raise ValueError(f"{where} has no rows for {name}={given!r}; it has {values}")
    return given


def _select_all_epochs(rows: list[dict], quantity: str, estimator: str | None) -> tuple[list[dict], str]:
    rows = [row for row in rows if row["quantity"] == quantity]
    if not rows:
        raise ValueError(f"mi_rows has no rows for quantity {quantity!r}")
    estimators = sorted({row["estimator"] for row in rows})
    estimator = _only_or_given(estimators, estimator, "estimator", f"mi_rows ({quantity})")
    return [row for row in rows if row["estimator"] == estimator], estimator


# ---------------------------------------------------------------- accuracy and memory


def _summary_rows(summary_rows: Any, column: str) -> list[dict[str, Any]]:
    rows = _rows(summary_rows, "summary_rows", ("mode", "K", "seed", column))
    name = "summary_rows"
    return [
        {"mode": run_label(_int(row, "K", name), str(row["mode"]), str(row.get("local_rule") or "gll")),
         "K": _int(row, "K", name), column: _float(row, column, name)}
        for row in rows
    ]


def _plot_vs_k(
    rows: list[dict], column: str, scale, ylabel: str, title: str, ax: Axes | None, *, from_zero: bool = False
) -> Figure:
    """Mean +- standard deviation over seeds per (mode, K) against K (log2 axis); E2E as a horizontal band."""
    figure, ax = _figure_and_axes(ax, (6.0, 4.2))
    groups: dict[tuple[str, int], list[float]] = defaultdict(list)
    for row in rows:
        groups[(row["mode"], row["K"])].append(scale(row[column]))
    ks = sorted({k for _, k in groups if k > 1})
    for mode in sorted({mode for mode, _ in groups}, key=_mode_order):
        mode_ks = [k for m, k in sorted(groups) if m == mode]
        means = [float(np.mean(groups[(mode, k)])) for k in mode_ks]
        spreads = [float(np.std(groups[(mode, k)], ddof=1)) if len(groups[(mode, k)]) > 1 else 0.0 for k in mode_ks]
        color = mode_color(mode)
        if mode == "E2E":
            ax.axhline(means[0], color=color, linestyle="--", linewidth=1.2, label="E2E", gid="e2e")
            low, high = means[0] - spreads[0], means[0] + spreads[0]
            ax.axhspan(low, high, color=color, alpha=0.1, linewidth=0, gid="e2e-band")
            continue
        label = mode_label(mode)
        bars = ax.errorbar(mode_ks, means, yerr=spreads, color=color, marker="o", markersize=4, capsize=3, label=label)
        bars.lines[0].set_gid(f"curve:{mode}")
    if ks:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(k) for k in ks])
    if from_zero:
        ax.set_ylim(bottom=0)
    _style_axes(ax, "number of modules K", ylabel, title)
    ax.legend(fontsize=LEGEND_SIZE)
    return figure


def _fraction_to_percent(value: float, column: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{column} must be a fraction in [0, 1], got {value}")
    return 100.0 * value


def plot_accuracy_vs_k(
    summary_rows: Any, metric: str = "test_acc", *, error: bool = False, ax: Axes | None = None
) -> Figure:
    """Accuracy (%) per mode against K, mean +- standard deviation over seeds; E2E as a dashed line.

    summary_rows: one row per run with mode, K, seed and `metric` (a fraction in [0, 1]).
    error=True plots the error 100 * (1 - metric), as the papers report it.
    """
    rows = _summary_rows(summary_rows, metric)
    if error:
        scale, name = (lambda v: 100.0 - _fraction_to_percent(v, metric)), metric.replace("_acc", "_error")
    else:
        scale, name = (lambda v: _fraction_to_percent(v, metric)), metric
    label = name.replace("_", " ")
    return _plot_vs_k(rows, metric, scale, f"{label} (%)", f"{label} against K (mean ± s.d. over seeds)", ax)


_BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("bytes", 1))


def plot_memory_vs_k(summary_rows: Any, *, ax: Axes | None = None) -> Figure:
    """Peak memory per mode against K, mean +- standard deviation over seeds, in the largest binary
    unit (GiB, MiB, KiB) that keeps the biggest value at least 1. summary_rows: mode, K, seed, peak_memory_bytes."""
    column = "peak_memory_bytes"
    rows = _summary_rows(summary_rows, column)
    largest = max((row[column] for row in rows if math.isfinite(row[column])), default=0.0)
    unit, size = next(((u, s) for u, s in _BYTE_UNITS if largest >= s), _BYTE_UNITS[-1])
    title = "peak memory against K (mean ± s.d. over seeds)"
    return _plot_vs_k(rows, column, lambda v: v / size, f"peak memory ({unit})", title, ax, from_zero=True)


def plot_local_accuracy(rows: Any, *, K: int | None = None, epoch: int | None = None, ax: Axes | None = None) -> Figure:
    """Accuracy (%) of every module's local head (acc_m0 .. acc_m{K-1}; the last is the final
    classifier) per (mode, K): how linearly separable each module keeps the classes.

    rows: a table with a mode column and acc_m<k> columns (metrics.csv rows with mode added, or run
    summaries), or a dict mode -> one run's metrics.csv (path or rows). K is the K column when there
    is one, else the number of acc_m<k> columns with a value. Where rows have an epoch column, each
    run (run column, else seed) is taken at its last epoch, or at `epoch`. Runs of the same (mode, K)
    are averaged. NaN accuracies (contrast heads have no classifier) leave gaps. K: show only
    that K (and E2E, K=1), since curves of several K of one mode share a colour.
    """
    if isinstance(rows, Mapping):
        rows = [
            {**row, "mode": mode, "run": mode}
            for mode, table in rows.items()
            for row in _rows(table, f"rows[{mode!r}]", ("acc_m0",))
        ]
    table = _rows(rows, "rows", ("mode", "acc_m0"))
    name = "rows"
    runs: dict[tuple, list[Mapping]] = defaultdict(list)
    for i, row in enumerate(table):
        k = _int(row, "K", name) if "K" in row else _count_heads(row)
        # rows with epochs are a run's history; without, every row is a run of its own
        run = str(row.get("run", row.get("seed", ""))) if "epoch" in row else i
        runs[(run_label(k, str(row["mode"]), str(row.get("local_rule") or "gll")), k, run)].append(row)
    curves: dict[tuple[str, int], list[list[float]]] = defaultdict(list)
    for (mode, k, _), run_rows in runs.items():
        if "epoch" in run_rows[0]:
            wanted = max(_int(r, "epoch", name) for r in run_rows) if epoch is None else epoch
            run_rows = [r for r in run_rows if _int(r, "epoch", name) == wanted]
            if not run_rows:
                continue
        missing = [f"acc_m{i}" for i in range(k) if f"acc_m{i}" not in run_rows[-1]]
        if missing:
            raise ValueError(f"rows for mode {mode!r}, K={k} lack column(s) {missing}")
        last = run_rows[-1]
        curves[(mode, k)].append([_fraction_or_nan(_float(last, f"acc_m{i}", name), f"acc_m{i}") for i in range(k)])
    if not curves:
        raise ValueError(f"rows have no run at epoch {epoch}")
    if K is not None:
        available = sorted({k for _, k in curves})
        curves = {key: value for key, value in curves.items() if key[1] in (K, 1)}
        if not any(k == K for _, k in curves):
            raise ValueError(f"K={K} has no runs; available K: {available}")
    figure, ax = _figure_and_axes(ax, (6.0, 4.2))
    several = len({k for _, k in curves}) > 1
    for mode, k in sorted(curves, key=lambda key: (_mode_order(key[0]), key[1])):
        means = [_mean_of_numbers(column) for column in zip(*curves[(mode, k)])]
        label = mode_label(mode) + _k_suffix(k, several)
        gid = f"curve:{mode}:K{k}"
        ax.plot(range(k), means, color=mode_color(mode), marker="o", markersize=4, label=label, gid=gid)
    title = "separability of each module's output"
    _style_axes(ax, "module k (the last one is the final classifier)", "local-head accuracy (%)", title)
    ax.xaxis.set_major_locator(FixedLocator(range(max(k for _, k in curves))))
    ax.legend(fontsize=LEGEND_SIZE)
    return figure


def _count_heads(row: Mapping[str, Any]) -> int:
    k = 0
    while row.get(f"acc_m{k}") not in (None, ""):
        k += 1
    return k


def _mean_of_numbers(values: Iterable[float]) -> float:
    """Mean of the non-NaN values; NaN when there is none (a contrast head has no accuracy)."""
    numbers = [v for v in values if not math.isnan(v)]
    return float(np.mean(numbers)) if numbers else math.nan


def _fraction_or_nan(value: float, column: str) -> float:
    return value if math.isnan(value) else _fraction_to_percent(value, column)


# ---------------------------------------------------------------- paired differences


def _comparison_rows(comparison_rows: Any) -> list[dict[str, Any]]:
    """Rows of comparisons.csv (or compare()) with a difference, numbers as floats."""
    rows = _rows(comparison_rows, "comparison_rows", ("point", "layer", "quantity", "estimator", "kind", "a", "b",
                                                       "K", "epoch", "diff", "ci_low", "ci_high"))  # fmt: skip
    name = "comparison_rows"
    return [
        {**row, "a": label_of(str(row["a"]), row.get("rule_a")), "b": label_of(str(row["b"]), row.get("rule_b")),
         "K": _int(row, "K", name), "epoch": _int(row, "epoch", name), "layer": _float(row, "layer", name),
         "diff": _float(row, "diff", name), "ci_low": _float(row, "ci_low", name),
         "ci_high": _float(row, "ci_high", name)}
        for row in rows if row["diff"] not in ("", None)
    ]  # fmt: skip


def plot_differences(
    comparison_rows: Any, *, K: int | None = None, epoch: int | None = None, ax_pair: Sequence[Axes] | None = None
) -> Figure:
    """Paired differences along the depth, I(h;y) left and I(h;x) right (the estimator of each the summary
    shows: report.summary_estimators): every pair a - b (GLL - E2E, ContSup - GLL, ...) with its 95% CI
    shaded and a zero line; a band that excludes 0 is a significant difference before the Holm adjustment.
    The last epoch unless `epoch`; `K` picks one K when the rows hold several."""
    rows = _comparison_rows(comparison_rows)
    if not rows:
        raise ValueError("comparison_rows has no differences to plot (only gaps)")
    ks = sorted({row["K"] for row in rows})
    if K is None and len(ks) > 1:
        raise ValueError(f"comparison_rows hold several K {ks}; pass K=")
    k = ks[0] if K is None else K
    at = max(row["epoch"] for row in rows) if epoch is None else epoch
    rows = [row for row in rows if row["K"] == k and row["epoch"] == at]
    if not rows:
        raise ValueError(f"comparison_rows have no differences at K={k}, epoch {at}")
    if ax_pair is None:
        figure = Figure(figsize=(12, 4.4), layout="constrained")
        ax_pair = figure.subplots(1, 2)
    figure = ax_pair[0].figure
    shown = dict(summary_estimators(rows))
    for ax, quantity in zip(ax_pair, ("I(h;y)", "I(h;x)")):
        mine = [row for row in rows if (row["quantity"], row["estimator"]) == (quantity, shown.get(quantity))]
        pairs = sorted({(row["a"], row["b"]) for row in mine}, key=lambda p: (p[1] != "E2E", _mode_order(p[0])))
        for a, b in pairs:
            line = sorted((row for row in mine if (row["a"], row["b"]) == (a, b)), key=lambda row: row["layer"])
            xs = [row["layer"] for row in line]
            color = mode_color(a)
            label = f"{'GLL' if a == GLL else mode_label(a)} - {'GLL' if b == GLL else mode_label(b)}"
            ax.fill_between(xs, [r["ci_low"] for r in line], [r["ci_high"] for r in line], color=color, alpha=0.2,
                            linewidth=0, gid=f"band:{a}-{b}")  # fmt: skip
            ax.plot(xs, [r["diff"] for r in line], color=color, marker="o", markersize=3,
                    linestyle="--" if b == "E2E" else "-", label=label, gid=f"curve:{a}-{b}")  # fmt: skip
        ax.axhline(0.0, color="0.3", linewidth=0.8, gid="zero")
        estimator = shown.get(quantity, "none")
        kinds = _kind_text(mine) if mine else "no rows"
        _style_axes(ax, "layer (unit; module inputs sit on the cuts)", f"difference in {quantity} [nats], {kinds}",
                    f"paired differences, {quantity} ({estimator}), K={k}")  # fmt: skip
        if mine:
            ax.legend(fontsize=LEGEND_SIZE)
    return figure


# ---------------------------------------------------------------- saving


def save_figure(figure: Figure, path_stem: str | os.PathLike, *, dpi: int = 200) -> tuple[Path, Path]:
    """Write `figure` as <path_stem>.png and <path_stem>.pdf (folders created); returns both paths.
    A .png or .pdf suffix on path_stem is dropped."""
    stem = Path(path_stem)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = (stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf"))
    for path in paths:
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return paths
