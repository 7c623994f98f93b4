"""Per-sample terms beside an mi.csv table, so that two rows measured on the same held-out samples can
be compared sample by sample (paired).

    sample_set_id("digits", ids)                            # -> "3f2a9c01b7e4", mi.csv's sample_set column
    write_terms(table, run, epoch, point, ids, {("I(h;y)", "probe_linear"): terms})
    read_terms(table)   # {(run, epoch, point, quantity, estimator): SampleTerms(ids, terms)}

Layout: <table stem>.samples/<run>/e<epoch>.<point>.<digest>.npz, one file per call, holding the
held-out sample ids (int64, n) and, per (quantity, estimator) of that point, the float64 terms (n,)
whose mean is the row's value (MIResult.terms). Files are immutable: written once through a
temporary file and a rename (a crash leaves no half file), never rewritten; a later analysis of the
same point (other estimators, a resumed run) adds another file (the digest of its content names
it). So concurrent analyses writing into one table never edit one another's files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from mi_analysis._util.files import atomic_write

SAMPLE_SET_CHARS = 12  # hex digits of the sample_set hash (48 bits: collisions are not a concern here)


@dataclasses.dataclass(frozen=True)
class SampleTerms:
    """ids: int64 (n,) held-out sample ids; terms: float64 (n,) per-sample terms, in the same order."""

    ids: np.ndarray
    terms: np.ndarray


def sample_set_id(source: str, ids: torch.Tensor | np.ndarray) -> str:
    """A short hash of which samples were held out: the source (data set and split) and the ordered ids.
    Two rows with the same sample_set were computed on the same samples in the same order."""
    digest = hashlib.sha256(source.encode() + b"\0" + np.asarray(ids, dtype=np.int64).tobytes())
    return digest.hexdigest()[:SAMPLE_SET_CHARS]


def samples_dir(table: str | Path) -> Path:
    """The folder of per-sample terms of `table`: <stem>.samples beside it."""
    table = Path(table)
    return table.with_name(f"{table.stem}.samples")


def write_terms(
    table: str | Path, run: str, epoch: int, point: str, ids: torch.Tensor | np.ndarray,
    terms: Mapping[tuple[str, str], torch.Tensor | np.ndarray],
) -> Path | None:  # fmt: skip
    """Store the per-sample terms of one (run, epoch, point) beside `table`; returns the file (None when
    `terms` is empty). terms: {(quantity, estimator): (n,) array} aligned with ids (n,)."""
    if not terms:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    keys = list(terms)
    matrix = np.stack([np.asarray(terms[key], dtype=np.float64) for key in keys])
    if matrix.shape[1] != len(ids):
        raise ValueError(f"terms of {run} epoch {epoch} point {point} have {matrix.shape[1]} samples, ids {len(ids)}")
    buffer = io.BytesIO()
    np.savez(buffer, ids=ids, quantities=np.array([q for q, _ in keys]), estimators=np.array([e for _, e in keys]),
             terms=matrix)  # fmt: skip
    content = buffer.getvalue()
    folder = samples_dir(table) / run
    path = folder / f"e{epoch}.{point}.{hashlib.sha256(content).hexdigest()[:SAMPLE_SET_CHARS]}.npz"
    if not path.exists():  # same content already stored: nothing to add
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(content), mode="wb")
    return path


def read_terms(table: str | Path) -> dict[tuple[str, str, str, str, str], SampleTerms]:
    """Every stored term vector of `table`, keyed like mi.csv rows: (run, epoch, point, quantity,
    estimator) as text. A table without a samples folder (older formats, analyze_model) gives {}."""
    found: dict[tuple[str, str, str, str, str], SampleTerms] = {}
    folder = samples_dir(table)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*/e*.npz")):
        epoch, point = path.name.split(".", 1)[0][1:], path.name.split(".", 1)[1].rsplit(".", 2)[0]
        with np.load(path, allow_pickle=False) as data:
            ids = data["ids"]
            for quantity, estimator, terms in zip(data["quantities"], data["estimators"], data["terms"]):
                found[(path.parent.name, epoch, point, str(quantity), str(estimator))] = SampleTerms(ids, terms)
    return found
