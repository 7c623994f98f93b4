"""Paired comparisons of training modes, from mi.csv tables and their per-sample terms.

    rows = compare(["runs/demo/mi.csv"], out="runs/demo/comparisons.csv")
    rows = compare(["runs/"], pairs=[("E", "R0")], seeds=[0, 1, 2])

For every pair (a, b) of run labels at one K, and every
(epoch, point, quantity, estimator) of either side, one row: diff = a - b with its 95% CI, the
two-sided p-value of "no difference" and p_holm, that p-value Holm-adjusted over every boundary
and pair of the table with the same quantity, estimator and epoch (holm.py). Default pairs: R0 -
E2E (what greedy local learning loses), every other mode - R0 (what context supply changes) and, for
runs of a local-learning rule other than gll, <mode>@<rule> - R0 (what the rule changes against
plain GLL at the same unit).

Run labels: the mode (mi.csv's mode column: E2E, R0, E, R1E, ...), followed by "@<rule>" for
runs of a rule other than gll (mi.csv's rule column: "R0@auglocal", "E@man"; models.config.run_label).
Only runs of one label are grouped; pairs name labels ("R0@auglocal:R0"). In the output, a and b
keep the modes and rule_a, rule_b the rules.

- paired=true: both rows are means of per-sample terms over the same held-out samples (same
  sample_set and ids); CI by a bootstrap over the samples with the same resamples for both sides
  (paired.py). paired=false, with the reason in `note`: an estimator that is not a sample mean,
  different held-out sample sets (different analysis seeds or sizes), or no stored terms; then
  the unpaired normal interval from the two rows' CIs.
- Several seeds: seed i of a is paired with seed i of b; the per-seed differences are averaged
  with a CI over seeds that holds both seed-to-seed and sample variation (seeds.py), and
  var_seeds, var_samples, dominant_variance say which dominates.
- Recovered fraction (mode - R0) / (E2E - R0), on the rows (in nats) of a ContSup mode or another rule against R0,
  with a 95% CI on the same resamples (several seeds: over seeds); only where GLL loses at that
  point, R0 - E2E < 0 with p_holm < 0.05; elsewhere empty and recovered_note says why ("GLL loss not
  significant", "no GLL loss: GLL above E2E", ...).
- A point, estimator or seed present on one side only gives a row with empty numbers and a note.

What a difference of two lower bounds (probe rows) measures: the difference in information that
the probe family can decode from h on these samples, not a bound on the difference of the true
mutual informations (each side may be loose by a different amount). A difference of two proxies
or estimates is likewise a difference of those numbers (docs/information.md).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mi_analysis._util.files import read_header, write_csv
from mi_analysis.models import E2E
from mi_analysis.models.config import run_label

from .holm import holm
from .measure import row_spec
from .paired import (NUM_RESAMPLES, Difference, paired_difference, ratio_of_differences, stderr_from_ci,
                     unpaired_difference)
from .samples import SampleTerms, read_terms
from .seeds import seed_mean
from .table import is_mi_header, read_rows, row_key

GLL = "R0"
ALPHA = 0.05  # family-wise level of the Holm-adjusted tests that gate the recovered fraction
NOT_SIGNIFICANT = "GLL loss not significant"
NO_LOSS = "no GLL loss: GLL above E2E"
COMPARISON_COLUMNS = (
    "point", "depth", "layer", "quantity", "estimator", "kind", "a", "b", "K", "epoch", "diff", "ci_low", "ci_high",
    "p_value", "p_holm", "n", "seeds", "paired", "recovered", "recovered_low", "recovered_high", "recovered_note",
    "var_seeds", "var_samples", "dominant_variance", "note", "rule_a", "rule_b",
)  # fmt: skip
FORMAT_2_COMPARISON_COLUMNS = COMPARISON_COLUMNS[:-2]  # before rules: every run gll
CELL = ("epoch", "point", "quantity", "estimator")


@dataclasses.dataclass(frozen=True)
class _Entry:
    row: dict[str, str]
    terms: SampleTerms | None


def layer_position(point: str, depth: int, module: int) -> float:
    """Position along the depth that lines up the same layer across K (and in figures): the flat unit
    index depth - module (module k has k "m{j}.in" points before its units); the context-augmented
    input "m{k}.in" of module k sits half a step after the last unit of module k-1, on the cut."""
    x = depth - module
    return x + 0.5 if point == f"m{module}.in" else float(x)


def parse_pair(text: str) -> tuple[str, str]:
    """'A:B' -> (A, B): the comparison A - B of two run labels."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--pairs takes A:B (two run labels, the comparison A - B, e.g. R0:E2E or "
                         f"R0@auglocal:R0), got {text!r}")
    return parts[0], parts[1]


def default_pairs(modes: Sequence[str]) -> list[tuple[str, str]]:
    """R0 - E2E, every other mode - R0 and every label of another rule - R0, for the labels present."""
    if GLL not in modes:
        return []
    others = sorted(m for m in modes if m not in (E2E, GLL) and "@" not in m)
    rules = sorted(m for m in modes if "@" in m)
    return ([(GLL, E2E)] if E2E in modes else []) + [(m, GLL) for m in others + rules]


def split_label(label: str) -> tuple[str, str]:
    """'R0@auglocal' -> ('R0', 'auglocal'); a label without a rule is gll."""
    mode, _, rule = label.partition("@")
    return mode, rule or "gll"


def load_tables(inputs: Sequence[str | Path]) -> tuple[list[dict[str, str]], dict[tuple[str, ...], SampleTerms]]:
    """(mi rows, per-sample terms by row key) from mi.csv files and folders searched for them; a row found
    twice (a table named directly and through its folder) is kept once."""
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    terms: dict[tuple[str, ...], SampleTerms] = {}
    for item in map(Path, inputs):
        if item.is_dir():
            tables = [p for p in sorted(item.rglob("*.csv")) if is_mi_header(read_header(p))]
        elif item.is_file():
            if not is_mi_header(read_header(item)):
                raise ValueError(f"{item} is not an mi.csv table")
            tables = [item]
        else:
            raise FileNotFoundError(f"compare input {item} does not exist; pass run folders or mi.csv files")
        for table in tables:
            rows.update((row_key(row), row) for row in read_rows(table))
            terms.update(read_terms(table))
    if not rows:
        raise ValueError(f"found no mi.csv rows in {[str(i) for i in inputs]}")
    return list(rows.values()), terms


def compare(
    inputs: Sequence[str | Path],
    *,
    pairs: Sequence[tuple[str, str] | str] | None = None,
    seeds: Sequence[int] | None = None,
    out: str | Path | None = None,
    num_resamples: int = NUM_RESAMPLES,
    bootstrap_seed: int = 0,
) -> list[dict[str, Any]]:
    """Comparison rows (COMPARISON_COLUMNS; module docstring) of the modes in mi.csv tables `inputs`.

    pairs: (a, b) or "a:b" for a - b; default R0 - E2E and every other mode - R0. With a ContSup - R0 pair
        and E2E rows present, R0 - E2E is added (the recovered fraction is gated on it).
    seeds: the training seeds to use, each needed on both sides (ValueError otherwise); default every seed
        the two sides share. out: also write the rows there (csv, atomically).
    """
    rows, terms = load_tables(inputs)
    index: dict[tuple, dict[int | None, _Entry]] = {}
    for row in rows:
        mode, k = run_label(int(row["K"]), row["mode"], row.get("rule") or "gll"), int(row["K"])
        seed = int(row["seed"]) if row.get("seed", "") not in ("", "None") else None
        cell = index.setdefault((mode, k, *(row[c] for c in CELL)), {})
        if seed in cell:
            raise ValueError(f"two runs of mode {mode}, K={k}, seed {seed} ({cell[seed].row['run']} and {row['run']}) "
                             "hold the same point; compare one configuration at a time")
        cell[seed] = _Entry(row, terms.get(row_key(row)))
    modes = sorted({key[0] for key in index})
    pairs = _pairs(pairs, modes)
    local_ks = sorted({key[1] for key in index if key[0] != E2E}) or [1]
    layers = {}  # (epoch, point, quantity, estimator) -> position along the depth
    for key, side in index.items():
        row = next(iter(side.values())).row
        layers.setdefault(key[2:], layer_position(key[3], int(row["depth"]), int(row["module"])))
    results: list[tuple[dict[str, Any], dict]] = []  # (row, {seed: (entry a, entry b, Difference)})
    for k in local_ks:
        for a, b in pairs:
            results += _compare_pair(index, layers, a, b, k, seeds, num_resamples, bootstrap_seed)
    _adjust(results)
    _recovered(results, num_resamples, bootstrap_seed)
    out_rows = [row for row, _ in results]
    for row in out_rows:
        (row["a"], row["rule_a"]), (row["b"], row["rule_b"]) = split_label(row["a"]), split_label(row["b"])
    if out is not None:
        write_csv(Path(out), [{c: _cell(row.get(c)) for c in COMPARISON_COLUMNS} for row in out_rows])
    return out_rows


def _pairs(pairs: Sequence[tuple[str, str] | str] | None, modes: list[str]) -> list[tuple[str, str]]:
    if pairs is None:
        chosen = default_pairs(modes)
        if not chosen:
            raise ValueError(f"no default pairs: the tables hold modes {modes} and no {GLL} (GLL) rows; pass pairs")
        return chosen
    chosen = [parse_pair(p) if isinstance(p, str) else tuple(p) for p in pairs]
    missing = sorted({m for pair in chosen for m in pair if m not in modes})
    if missing:
        raise ValueError(f"pairs name mode(s) {missing} that the tables do not hold; modes (mode@rule for rules "
                         f"other than gll): {modes}")
    if E2E in modes and (GLL, E2E) not in chosen and any(b == GLL and a != E2E for a, b in chosen):
        chosen.insert(0, (GLL, E2E))
    return chosen


def _compare_pair(index: dict, layers: dict, a: str, b: str, k: int, seeds: Sequence[int] | None,
                  num_resamples: int, bootstrap_seed: int) -> list[tuple[dict[str, Any], dict]]:  # fmt: skip
    k_a, k_b = (1 if mode == E2E else k for mode in (a, b))
    cells = sorted({key[2:] for key in index if key[:2] in ((a, k_a), (b, k_b))},
                   key=lambda cell: (int(cell[0]), layers[cell], cell))  # fmt: skip
    if not any(key[:2] == (a, k_a) for key in index) or not any(key[:2] == (b, k_b) for key in index):
        return []  # a mode without runs at this K
    out = []
    for cell in cells:
        side_a, side_b = index.get((a, k_a, *cell), {}), index.get((b, k_b, *cell), {})
        epoch, point, quantity, estimator = cell
        first = next(iter((side_a or side_b).values())).row
        row: dict[str, Any] = {"point": point, "depth": int(first["depth"]), "layer": layers[cell],
                               "quantity": quantity,
                               "estimator": estimator, "kind": first["kind"], "a": a, "b": b, "K": k,
                               "epoch": int(epoch)}  # fmt: skip
        if not side_a or not side_b:
            row["note"] = f"no {quantity} {estimator} row of {b if side_a else a} at this point"
            out.append((row, {}))
            continue
        common = sorted(set(side_a) & set(side_b), key=lambda s: (s is None, s))
        if seeds is not None:
            lacking = [s for s in seeds if s not in side_a or s not in side_b]
            if lacking:
                raise ValueError(f"seeds {list(seeds)} asked for, but at {point} ({quantity}, {estimator}, epoch "
                                 f"{epoch}) {a} has seeds {_seeds(side_a)} and {b} has {_seeds(side_b)}")
            common = list(seeds)
        if not common:
            row["note"] = f"no seed in common: {a} has seeds {_seeds(side_a)}, {b} has {_seeds(side_b)}"
            out.append((row, {}))
            continue
        per_seed = {}
        notes = []
        for s in common:
            difference, note = _difference(side_a[s], side_b[s], num_resamples, bootstrap_seed)
            per_seed[s] = (side_a[s], side_b[s], difference)
            notes += [note] if note and note not in notes else []
        row.update(_aggregate([d for _, _, d in per_seed.values()]), note="; ".join(notes))
        out.append((row, per_seed))
    return out


def _seeds(side: dict) -> list:
    return sorted(side, key=lambda s: (s is None, s))


def _difference(a: _Entry, b: _Entry, num_resamples: int, bootstrap_seed: int) -> tuple[Difference, str]:
    """a - b, paired when both have per-sample terms of the same samples; else unpaired and why."""
    estimator = a.row["estimator"]
    if a.terms is not None and b.terms is not None:
        same = a.row.get("sample_set", "") == b.row.get("sample_set", "") and np.array_equal(a.terms.ids, b.terms.ids)
        if same:
            return paired_difference(a.terms.terms, b.terms.terms, num_resamples=num_resamples, seed=bootstrap_seed), ""
        note = (f"unpaired: different held-out sample sets ({a.row.get('sample_set')} in {a.row['run']}, "
                f"{b.row.get('sample_set')} in {b.row['run']})")
    else:
        spec = row_spec(estimator)
        if spec is not None and not spec.per_sample:
            note = f"unpaired: {estimator} is not a mean of per-sample terms"
        else:
            note = ("unpaired: no per-sample terms stored for one side (a table of an earlier format, or a result "
                    "that is not their mean, e.g. a clipped KDE bound)")
    va, vb = float(a.row["value"]), float(b.row["value"])
    se_a = stderr_from_ci(float(a.row["ci_low"]), float(a.row["ci_high"]))
    se_b = stderr_from_ci(float(b.row["ci_low"]), float(b.row["ci_high"]))
    n = min(int(a.row["n"]), int(b.row["n"])) if a.row.get("n") and b.row.get("n") else 0
    return unpaired_difference(va, se_a, vb, se_b, n), note


def _aggregate(differences: list[Difference]) -> dict[str, Any]:
    """The row's numbers from one seed's difference, or the mean over seeds (seeds.py)."""
    first = differences[0]
    paired = all(d.paired for d in differences)
    if len(differences) == 1:
        return {"diff": first.diff, "ci_low": first.ci_low, "ci_high": first.ci_high, "p_value": first.p_value,
                "n": first.n, "seeds": 1, "paired": paired}  # fmt: skip
    agg = seed_mean([d.diff for d in differences], [d.stderr for d in differences])
    return {"diff": agg.mean, "ci_low": agg.ci_low, "ci_high": agg.ci_high, "p_value": agg.p_value, "n": first.n,
            "seeds": agg.seeds, "paired": paired, "var_seeds": agg.var_seeds, "var_samples": agg.var_samples,
            "dominant_variance": agg.dominant}  # fmt: skip


def _adjust(results: list[tuple[dict[str, Any], dict]]) -> None:
    """p_holm: Holm over every boundary and pair with the same quantity, estimator and epoch."""
    families: dict[tuple, list[dict[str, Any]]] = {}
    for row, _ in results:
        if "p_value" in row:
            families.setdefault((row["quantity"], row["estimator"], row["epoch"]), []).append(row)
    for family in families.values():
        for row, adjusted in zip(family, holm([row["p_value"] for row in family])):
            row["p_holm"] = adjusted


def _recovered(results: list[tuple[dict[str, Any], dict]], num_resamples: int, bootstrap_seed: int) -> None:
    """recovered, recovered_low/high or recovered_note on every ContSup - R0 and rule - R0 row."""
    losses = {(row["K"], row["epoch"], row["point"], row["quantity"], row["estimator"]): (row, per_seed)
              for row, per_seed in results if (row["a"], row["b"]) == (GLL, E2E)}  # fmt: skip
    for row, per_seed in results:
        if row["b"] != GLL or row["a"] in (E2E, GLL) or "diff" not in row:
            continue
        loss, loss_seeds = losses.get((row["K"], row["epoch"], row["point"], row["quantity"], row["estimator"]),
                                      (None, {}))  # fmt: skip
        if row["kind"] == "non_shannon":
            row["recovered_note"] = "not in nats"  # e.g. an error, where less is more
        elif loss is None or "diff" not in loss:
            row["recovered_note"] = f"no {E2E} row at this point"
        elif not loss.get("p_holm", math.nan) < ALPHA:
            row["recovered_note"] = NOT_SIGNIFICANT
        elif loss["diff"] > 0:
            row["recovered_note"] = NO_LOSS
        elif not (row["paired"] and loss["paired"]) or set(per_seed) != set(loss_seeds):
            row["recovered_note"] = "needs paired per-sample terms on the same seeds"
        elif len(per_seed) == 1:
            (s,) = per_seed
            contsup, gll, _ = per_seed[s]
            e2e = loss_seeds[s][1]
            value, low, high = ratio_of_differences(contsup.terms.terms, gll.terms.terms, e2e.terms.terms,
                                                    num_resamples=num_resamples, seed=bootstrap_seed)  # fmt: skip
            row.update(recovered=value, recovered_low=low, recovered_high=high)
        else:
            gains = np.array([per_seed[s][2].diff for s in per_seed])
            lost = -np.array([loss_seeds[s][2].diff for s in per_seed])  # E2E - GLL per seed
            row.update(zip(("recovered", "recovered_low", "recovered_high"),
                           _seed_ratio(gains, lost, num_resamples, bootstrap_seed)),
                       recovered_note="CI by resampling seeds")  # fmt: skip


def _seed_ratio(gains: np.ndarray, lost: np.ndarray, num_resamples: int, seed: int) -> tuple[float, float, float]:
    """mean(gains) / mean(lost) with a 95% percentile CI from resampling the seeds."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(gains), size=(num_resamples, len(gains)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = gains[picks].mean(1) / lost[picks].mean(1)
    low, high = np.quantile(ratios[np.isfinite(ratios)], [0.025, 0.975])
    return float(gains.mean() / lost.mean()), float(low), float(high)


def _cell(value: Any) -> str:
    """A comparisons.csv cell: empty for a missing or NaN number, true/false for flags, repr for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)
