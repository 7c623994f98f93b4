"""Comparison rows (compare.py) as a markdown summary: per boundary, what greedy local learning lost
against E2E and what each context-supply mode and each other local-learning rule (R0@auglocal, ...)
changed against it, with paired 95% CIs, Holm-adjusted p-values and the recovered fraction (or why it
is absent); what stayed insignificant says so.

    text = render_comparisons(compare(["runs/demo/mi.csv"]), points=["s1.b1", "s2.b1"])
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from mi_analysis.models import E2E
from mi_analysis.models.config import label_of

from .comparisons import ALPHA, GLL
from .measure import preference_rank

SUMMARY_QUANTITIES = ("I(h;y)", "I(h;x)")  # the summaries' order: what is kept about the labels first


def _number(value: Any) -> float:
    """A cell as a float: '' or None as NaN (rows may come from compare() or from comparisons.csv)."""
    return math.nan if value in (None, "") else float(value)


def _paired(row: Mapping[str, Any]) -> bool:
    return row.get("paired") in (True, "true")


def summary_estimators(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(quantity, estimator) the summary shows: per quantity the best ranked estimator in nats (kind not
    non_shannon) that has paired rows, else the best ranked one."""
    chosen = []
    for quantity in SUMMARY_QUANTITIES:
        present = {str(r["estimator"]) for r in rows if r["quantity"] == quantity and r["kind"] != "non_shannon"}
        paired = {str(r["estimator"]) for r in rows if r["quantity"] == quantity and _paired(r)} & present
        pool = paired or present
        if pool:
            chosen.append((quantity, min(pool, key=lambda e: (preference_rank(quantity, e), e))))
    return chosen


def _difference(row: Mapping[str, Any] | None) -> str:
    if row is None or math.isnan(_number(row.get("diff"))):
        return "-"
    text = f"{_number(row['diff']):+.3f} [{_number(row['ci_low']):+.3f}, {_number(row['ci_high']):+.3f}]"
    p = _number(row.get("p_holm"))
    if not math.isnan(p):
        text += ", p_holm < 0.0001" if p < 1e-4 else f", p_holm {p:.2g}"
    return text + ("" if _paired(row) else " (unpaired)")


def _recovered(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "-"
    value = _number(row.get("recovered"))
    if math.isnan(value):
        return str(row.get("recovered_note") or "-")
    low, high = _number(row["recovered_low"]), _number(row["recovered_high"])
    return f"{100 * value:.0f}% [{100 * low:.0f}%, {100 * high:.0f}%]"


def _significant(row: Mapping[str, Any] | None) -> bool:
    return row is not None and _number(row.get("p_holm")) < ALPHA


def render_comparisons(
    rows: Sequence[Mapping[str, Any]],
    *,
    points: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    epoch: int | None = None,
) -> str:
    """Markdown: one table per shown (quantity, estimator) with a line per point (`points` in that order,
    default every point with a GLL - E2E row), labelled by `labels` (default the point name); the last
    epoch unless `epoch`; then which differences are significant (Holm p < 0.05) and which are not."""
    rows = [r for r in rows if r.get("diff") not in (None, "")]
    if not rows:
        return "No comparisons: the tables hold no pair of modes measured at the same points."
    epoch = max(int(r["epoch"]) for r in rows) if epoch is None else epoch
    rows = [r for r in rows if int(r["epoch"]) == epoch]
    rows = [{**r, "a": label_of(str(r["a"]), r.get("rule_a")), "b": label_of(str(r["b"]), r.get("rule_b"))}
            for r in rows]
    # ContSup modes, then the labels of other rules, each against plain GLL
    contsup = sorted({str(r["a"]) for r in rows if r["b"] == GLL and r["a"] not in (E2E, GLL)},
                     key=lambda label: ("@" in label, label))
    ks = sorted({int(r["K"]) for r in rows})
    parts = [
        f"Paired differences a - b at epoch {epoch} (nats; 95% CI by a bootstrap over the shared held-out samples, "
        "the same resamples for both sides; several seeds: mean over seeds with a CI over seeds and samples). "
        f"p_holm: Holm-adjusted over every boundary and pair of one quantity and estimator. 'recovered' = "
        f"(ContSup or rule - GLL) / (E2E - GLL), shown only where the GLL loss is significant (p_holm < {ALPHA}). "
        "A difference of two lower bounds is a difference in probe-decodable information, not a bound on the "
        "difference of the true mutual informations."
    ]
    for k in ks:
        for quantity, estimator in summary_estimators([r for r in rows if int(r["K"]) == k]):
            mine = {(str(r["a"]), str(r["b"]), str(r["point"])): r for r in rows
                    if int(r["K"]) == k and (r["quantity"], r["estimator"]) == (quantity, estimator)}  # fmt: skip
            shown = list(points) if points is not None else [p for (a, b, p) in mine if (a, b) == (GLL, E2E)]
            head = ["boundary", "GLL - E2E", *(f"{m} - GLL" for m in contsup), *(f"{m} recovered" for m in contsup)]
            table = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
            significant, insignificant = [], []
            for point in shown:
                loss = mine.get((GLL, E2E, point))
                gains = [mine.get((m, GLL, point)) for m in contsup]
                label = (labels or {}).get(point, point)
                table.append("| " + " | ".join([label, _difference(loss), *map(_difference, gains),
                                                 *map(_recovered, gains)]) + " |")  # fmt: skip
                for name, row in (("GLL - E2E", loss), *((f"{m} - GLL", g) for m, g in zip(contsup, gains))):
                    if row is not None and not math.isnan(_number(row.get("diff"))):
                        (significant if _significant(row) else insignificant).append(f"{name} at {label}")
            parts += ["", f"### {quantity}, {estimator} ({next(iter(mine.values()))['kind']}), K={k}", "",
                      *table, "", _verdict(significant, insignificant)]  # fmt: skip
            parts += _variance_sources([mine[key] for key in mine if key[2] in shown])
    return "\n".join(parts) + "\n"


def _variance_sources(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A line saying which source of variance dominates the differences of several seeds (none for one seed)."""
    dominant = [str(r.get("dominant_variance") or "") for r in rows if _number(r.get("seeds")) > 1]
    dominant = [d for d in dominant if d]
    if not dominant:
        return []
    seeds = int(max(_number(r.get("seeds")) for r in rows))
    return ["", f"Over {seeds} seeds: seed-to-seed variation dominates the uncertainty of {dominant.count('seeds')} "
                f"of {len(dominant)} differences, held-out sample variation that of the other "
                f"{dominant.count('samples')}."]


def _verdict(significant: list[str], insignificant: list[str]) -> str:
    yes = "; ".join(significant) if significant else "none"
    no = "; ".join(insignificant) if insignificant else "none"
    return f"Significant (p_holm < {ALPHA}): {yes}. Not significant (inside the noise at this size): {no}."
