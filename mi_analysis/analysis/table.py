"""mi.csv: the tidy table of an analysis, appended atomically and never rewritten.

One row per (run, epoch, point, quantity, estimator). The settings that produced the rows are
kept next to the table (analysis.yaml for mi.csv, <stem>.analysis.yaml for any other name) and
every append checks them, so one table never mixes rows of different settings. Appending writes
the old bytes unchanged plus the new lines to a temporary file and renames it over the table
(atomic_write): a crash leaves the old table or the new one, never half of one. Appends hold a
lock on the table (file_lock) and read it again under the lock, so several processes analysing
into one table (e.g. `mi-analysis analyze RUN --out all.csv` started several times at once) lose
no row and write each key once: a row another process wrote meanwhile is not written again.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Any, Iterable

import yaml

from mi_analysis._util.files import atomic_write, file_lock, read_csv, read_header
from mi_analysis._util.version import check_format_version

from .settings import AnalysisConfig

MI_COLUMNS = (
    "run", "mode", "K", "seed", "epoch", "point", "depth", "module",
    "quantity", "estimator", "kind", "value", "ci_low", "ci_high", "n", "sample_set", "notes", "rule",
)  # fmt: skip
# sample_set: a short hash of the held-out sample ids (rows of different sets are never paired);
# notes: the estimator's caveats, "; "-joined. Tables of format 1 lack both and read them as empty.
# rule: the run's local-learning rule (models/rules.py); tables of formats 1 and 2 lack it: gll.
FORMAT_2_COLUMNS = MI_COLUMNS[:-1]
FORMAT_1_COLUMNS = MI_COLUMNS[:-3]
OLDER_COLUMNS = (FORMAT_1_COLUMNS, FORMAT_2_COLUMNS)
KEY_COLUMNS = ("run", "epoch", "point", "quantity", "estimator")
# Version of the mi.csv + analysis.yaml pair, written into analysis.yaml. 1: held_out_size (was
# probe_size, still read). 2: sample_set and notes columns, per-sample terms beside the table
# (samples.py). 3: rule column. Tables without it were written before versions were recorded and
# still load.
TABLE_FORMAT = 3


def is_mi_header(header: Any) -> bool:
    """Whether a csv header is that of an mi.csv table of this or an earlier format."""
    return tuple(header) in (MI_COLUMNS, *OLDER_COLUMNS)


def settings_path(table: Path) -> Path:
    """Where the settings of `table` live: analysis.yaml beside mi.csv, else <stem>.analysis.yaml."""
    table = Path(table)
    return table.with_name("analysis.yaml" if table.name == "mi.csv" else f"{table.stem}.analysis.yaml")


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[column]) for column in KEY_COLUMNS)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of an mi.csv table as text, each key once. Versions before appends were locked could
    write a key twice: identical rows are read once (with a warning), different rows of one key
    are a ValueError naming the key (which of them is right is unknown)."""
    kept: dict[tuple[str, ...], dict[str, str]] = {}
    repeated = 0
    for row in read_csv(path):
        key = row_key(row)
        if key not in kept:
            kept[key] = row
        elif kept[key] == row:
            repeated += 1
        else:
            differing = [f"{c}: {kept[key].get(c)!r} / {row.get(c)!r}" for c in row if kept[key].get(c) != row.get(c)]
            raise ValueError(f"{path} has two different rows for (run, epoch, point, quantity, estimator) = {key} "
                             f"({'; '.join(differing)}); delete the wrong one or analyse into a new table")
    if repeated:
        warnings.warn(f"{path} holds {repeated} repeated row(s) (written twice by an older mi_analysis); "
                      "each is read once", stacklevel=2)
    return list(kept.values())


def format_value(value: Any) -> str:
    """A cell as text: floats with full precision (repr), NaN as 'nan', None as ''."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


class MiTable:
    """An mi.csv file bound to one AnalysisConfig's settings.

    MiTable(path, config) raises ValueError when the file already holds rows of other settings
    (or rows without a settings file, or other columns). `done(key)` tells whether a row exists;
    `append(rows)` adds new rows and refuses to replace existing ones; rows another process wrote
    since (same keys, same settings) are skipped.
    """

    def __init__(self, path: str | Path, config: AnalysisConfig) -> None:
        self.path = Path(path)
        self.settings = config.settings()
        self._settings_file = settings_path(self.path)
        self._keys: set[tuple[str, ...]] = set()
        self.columns = MI_COLUMNS  # what append writes: the existing table's own columns
        if self.path.exists():
            self._check_existing()
            self._keys = {row_key(row) for row in read_rows(self.path)}

    def _check_existing(self) -> None:
        if self.path.is_dir():
            raise ValueError(f"the table {self.path} is a folder; expected a csv file path (--out PATH / out=)")
        header = read_header(self.path) or None
        if header is not None and tuple(header) in OLDER_COLUMNS:
            self.columns = tuple(header)  # new rows keep its columns; their terms still go beside it
        elif header is not None and tuple(header) != MI_COLUMNS:
            raise ValueError(
                f"{self.path} is not an mi.csv table: its columns are {header}, expected {list(MI_COLUMNS)}"
            )
        if header is not None and not self._settings_file.is_file():
            raise ValueError(
                f"{self.path} holds rows but no settings file {self._settings_file.name}; their settings are unknown, "
                "so new rows cannot be added to it: write to another table (--out PATH / out=)"
            )
        if self._settings_file.is_file():
            stored = yaml.safe_load(self._settings_file.read_text()) or {}
            check_format_version(stored.get("format_version") if isinstance(stored, dict) else None, TABLE_FORMAT,
                                 str(self._settings_file))
            stored = _current_form(stored)
            if header is not None and stored != self.settings:
                differences = [
                    f"{key}: {stored.get(key)!r} in the table, {self.settings.get(key)!r} now"
                    for key in sorted(set(stored) | set(self.settings))
                    if stored.get(key) != self.settings.get(key)
                ]
                raise ValueError(
                    f"{self.path} holds rows of other analysis settings ({'; '.join(differences)}); rows of "
                    "different settings are never mixed in one table: write to another table (--out PATH / out=)"
                )

    def done(self, key: tuple[str, ...]) -> bool:
        return key in self._keys

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = [{"rule": "gll", **row} for row in rows]  # a row without a rule is of plain GLL
        if not rows:
            return
        keys = [row_key({k: format_value(v) for k, v in row.items()}) for row in rows]
        repeated = [key for key in keys if key in self._keys] or [k for i, k in enumerate(keys) if k in keys[:i]]
        if repeated:
            raise ValueError(
                f"{self.path} already has a row for (run, epoch, point, quantity, estimator) = {repeated[0]}"
            )
        if "rule" not in self.columns and any(row.get("rule", "gll") != "gll" for row in rows):
            raise ValueError(f"{self.path} is a table of an earlier format without a rule column; rows of a "
                             "local-learning rule other than gll go to another table (--out PATH / out=)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path):
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            if fresh:
                atomic_write(self._settings_file, lambda f: f.write(_settings_text(self.settings)))
            else:  # another process may have written it since: its settings and keys as they are now
                self._check_existing()
                self._keys |= {row_key(row) for row in read_rows(self.path)}
            new = [row for row, key in zip(rows, keys) if key not in self._keys]
            old = b"" if fresh else self.path.read_bytes()
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            if fresh:
                writer.writerow(MI_COLUMNS)
            for row in new:
                writer.writerow([format_value(row[column]) for column in self.columns])
            if new:
                atomic_write(self.path, lambda f: f.write(old + buffer.getvalue().encode()), mode="wb")
        self._keys.update(keys)


def _current_form(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored settings as this version writes them (a file of an earlier release has flat estimator keys
    such as knn_k, and lacks settings added since, at their defaults); as stored when they do not parse."""
    try:
        return AnalysisConfig.from_dict(stored).settings()
    except (ValueError, TypeError):
        return stored


def _settings_text(settings: dict[str, Any]) -> str:
    header = (
        "# Settings of the rows in the table beside this file (mi_analysis AnalysisConfig, without the\n"
        "# selection fields points/quantities/estimators/device/batch_size). Do not edit.\n"
    )
    return header + yaml.safe_dump({"format_version": TABLE_FORMAT, **settings}, sort_keys=False)
