"""The figures of `mi-analysis plot`: from mi.csv tables and run directories to PNG + PDF files.

    paths = make_figures(["runs/"], "figures/")

Written (each as .png and .pdf), when the tables hold what they need:
- depth_<quantity>_<estimator>: one quantity along the depth, every (mode, K), CIs, cuts marked;
- information_depth: I(h;x) and I(h;y) side by side, with the preferred estimator of each (with a
  darker band for the CI of the mean over seeds where runs of several seeds share a configuration);
- plane_<mode>_K<K>: the information plane across epochs (runs with several analysed epochs);
- accuracy_vs_k, memory_vs_k, local_accuracy: from the run directories' metrics.csv;
- differences (differences_K<K> when there are several K; differences_<folder>_<stem> per table when
  there are several tables): paired differences along the depth with their CIs and a zero line, from
  comparisons.csv tables (`mi-analysis compare`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from mi_analysis._util.files import read_csv, read_header
from mi_analysis.analysis import plots
from mi_analysis.models.config import run_mode

from .comparisons import COMPARISON_COLUMNS, FORMAT_2_COMPARISON_COLUMNS
from .measure import preference_rank
from .runs import collect_runs
from .settings import QUANTITIES
from .table import MI_COLUMNS, is_mi_header, read_rows, row_key

SLUGS = {"I(h;x)": "Ihx", "I(h;y)": "Ihy"}


def read_inputs(inputs: Sequence[str | Path]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """(mi rows, run summaries) from mi.csv files and folders (searched for mi tables and run directories).
    Rows found twice (a table named directly and through its folder) are kept once."""
    rows, summaries, _ = _read_all(inputs)
    return rows, summaries


def _read_all(inputs: Sequence[str | Path]) -> tuple[list[dict[str, str]], list[dict[str, Any]], dict[Path, list]]:
    """read_inputs, and the rows of every comparisons.csv table found, by path."""
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    comparisons: dict[Path, list[dict[str, str]]] = {}
    for item in map(Path, inputs):
        if item.is_dir():
            headers = {p: read_header(p) for p in sorted(item.rglob("*.csv"))}
            tables = [p for p, header in headers.items() if is_mi_header(header)]
            comparisons.update((p, read_csv(p)) for p, header in headers.items() if _is_comparisons(header))
            summaries.update((s["path"], s) for s in collect_runs(item))
        elif item.is_file():
            header = read_header(item)
            if _is_comparisons(header):
                comparisons[item] = read_csv(item)
                continue
            if not is_mi_header(header):
                raise ValueError(f"{item} is neither an mi.csv table (columns {list(MI_COLUMNS)}) nor a "
                                 "comparisons.csv table (mi-analysis compare)")
            tables = [item]
        else:
            raise FileNotFoundError(f"plot input {item} does not exist; pass run folders, mi.csv or comparisons.csv")
        for table in tables:
            rows.update((row_key(row), row) for row in read_rows(table))
    return list(rows.values()), list(summaries.values()), comparisons


def _is_comparisons(header: tuple[str, ...]) -> bool:
    return header in (COMPARISON_COLUMNS, FORMAT_2_COMPARISON_COLUMNS)


def make_figures(inputs: Sequence[str | Path], out_dir: str | Path) -> list[Path]:
    """Write every figure the inputs allow into out_dir; returns the files written (PNG and PDF)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the figure folder {out_dir} is a file; expected a folder (--out DIR)")
    mi_rows, summaries, comparisons = _read_all(inputs)
    if not mi_rows and not summaries and not comparisons:
        raise ValueError(f"found no mi.csv rows, comparisons and run directories in {[str(i) for i in inputs]}")
    written: list[Path] = []

    def save(figure, name: str) -> None:
        written.extend(plots.save_figure(figure, out_dir / name))

    estimators = defaultdict(set)
    for row in mi_rows:
        estimators[row["quantity"]].add(row["estimator"])
    for quantity in sorted(estimators):
        for estimator in sorted(estimators[quantity]):
            figure = plots.plot_information_along_depth(mi_rows, quantity, estimator)
            save(figure, f"depth_{SLUGS.get(quantity, quantity)}_{estimator}")
    chosen = {q: _preferred(q, estimators[q]) for q in estimators}
    if set(chosen) == set(QUANTITIES):
        x_est, y_est = chosen["I(h;x)"], chosen["I(h;y)"]
        figure = plots.plot_information_panel(mi_rows, x_estimator=x_est, y_estimator=y_est,
                                              seed_bands=_several_seeds(mi_rows))  # fmt: skip
        save(figure, "information_depth")
        for mode, k in _several_epochs(mi_rows):
            figure = plots.plot_information_plane(mi_rows, mode, K=k, x_estimator=x_est, y_estimator=y_est)
            save(figure, f"plane_{mode}_K{k}")
    with_accuracy = [s for s in summaries if s["test_acc"] == s["test_acc"]]  # NaN: not evaluated yet
    if with_accuracy:
        save(plots.plot_accuracy_vs_k(with_accuracy), "accuracy_vs_k")
        save(plots.plot_memory_vs_k(with_accuracy), "memory_vs_k")
        save(plots.plot_local_accuracy(with_accuracy), "local_accuracy")
    for path, table in comparisons.items():
        with_differences = [row for row in table if row["diff"] != ""]
        ks = sorted({int(row["K"]) for row in with_differences})
        # one comparisons table: "differences"; several: named after their folders
        stem = "differences" if len(comparisons) == 1 else f"differences_{path.parent.name}_{path.stem}"
        for k in ks:
            save(plots.plot_differences(with_differences, K=k), stem if len(ks) == 1 else f"{stem}_K{k}")
    return written


def _preferred(quantity: str, present: set[str]) -> str:
    """The estimator shown in the side-by-side figures: the best ranked present (registry entries and
    reconstruction rows declare their rank per quantity), else the first name."""
    return min(present, key=lambda estimator: (preference_rank(quantity, estimator), estimator))


def _several_seeds(rows: list[dict[str, str]]) -> bool:
    """Whether some (mode, K, point) has rows of more than one training seed."""
    seeds = defaultdict(set)
    for row in rows:
        seeds[(row["mode"], row["K"], row["point"])].add(row.get("seed", ""))
    return any(len(found - {""}) > 1 for found in seeds.values())


def _several_epochs(rows: list[dict[str, str]]) -> list[tuple[str, int]]:
    """(mode, K) of the runs analysed at more than one epoch."""
    epochs = defaultdict(set)
    for row in rows:
        mode = run_mode(int(row["K"]), row["mode"])
        epochs[(mode, int(row["K"]), row["run"])].add(row["epoch"])
    return sorted({(mode, k) for (mode, k, _), seen in epochs.items() if len(seen) > 1})
