"""Crash-safe files: atomic writes (a crash leaves the old file or the new one, never half), locks
that serialise read-modify-write across processes, and csv."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import filelock

LOCK_TIMEOUT_S = 600.0  # how long a process waits for another's lock before giving up with an error


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through a temporary file in the same folder, then rename: a crash or Ctrl-C leaves
    either the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temporaries_of(path: Path) -> list[Path]:
    """The temporary files atomic_write makes for `path` (.NAME.*.tmp beside it); those still there
    when no write is under way were left by a killed process."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


@contextmanager
def file_lock(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive lock on `path` across processes (a .NAME.lock file beside it) while the
    block runs: what one process reads, changes and writes back, no other changes in between."""
    path = Path(path)
    lock = filelock.FileLock(str(path.with_name(f".{path.name}.lock")), timeout=timeout_s)
    try:
        with lock:
            yield
    except filelock.Timeout:
        raise TimeoutError(f"{path} stayed locked by another process for {timeout_s:.0f} s "
                           f"(its lock file is {lock.lock_file})") from None


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite the whole table atomically (tables here are small: one row per epoch or point)."""
    fieldnames: list[str] = []
    for row in rows:
        fieldnames += [k for k in row if k not in fieldnames]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_header(path: str | os.PathLike) -> tuple[str, ...]:
    """The header line of a CSV file (empty for an empty file); not UTF-8 text csv: a ValueError naming it."""
    try:
        with open(path, newline="") as handle:
            return tuple(next(csv.reader(handle), ()))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path} is not a UTF-8 csv table ({err})") from None


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (keys from the header line); a file that is not
    UTF-8 text csv is a ValueError naming it."""
    try:
        with open(path, newline="") as handle:
            return list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path} is not a UTF-8 csv table ({err})") from None
