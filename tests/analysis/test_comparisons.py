"""Paired comparisons with known answers: bootstrap intervals, Holm, seeds, recovered fraction, gaps and refusals."""

import csv
import math

import numpy as np
import pytest

from mi_analysis.analysis.comparisons import NO_LOSS, NOT_SIGNIFICANT, compare
from mi_analysis.analysis.holm import holm
from mi_analysis.analysis.paired import paired_difference, ratio_of_differences, stderr_from_ci, unpaired_difference
from mi_analysis.analysis.report import render_comparisons
from mi_analysis.analysis.samples import read_terms, sample_set_id, write_terms
from mi_analysis.analysis.seeds import seed_mean, seed_table
from mi_analysis.analysis.table import MI_COLUMNS

N = 400


def _terms_ci(terms):
    half = 1.96 * terms.std(ddof=1) / math.sqrt(len(terms))
    return terms.mean() - half, terms.mean() + half


def write_table(path, sides, *, n=N, estimator="probe_linear", kind="lower_bound", ids=None, store_terms=True):
    """mi.csv + per-sample terms: sides {(mode, K, seed, point): terms (n,)} (depth 1 + point index)."""
    ids = np.arange(n) if ids is None else ids
    rows = []
    for (mode, k, seed, point), terms in sides.items():
        run = f"run-{mode}-K{k}-s{seed}"
        if store_terms:
            write_terms(path, run, 3, point, ids, {("I(h;y)", estimator): terms})
        low, high = _terms_ci(terms)
        rows.append(dict(run=run, mode=mode, K=k, seed=seed, epoch=3, point=point, depth=int(point[1:]), module=0,
                         quantity="I(h;y)", estimator=estimator, kind=kind, value=float(terms.mean()),
                         ci_low=low, ci_high=high, n=n, sample_set=sample_set_id("synthetic", ids), notes=""))
    mode = "a" if path.exists() else "w"
    with open(path, mode, newline="") as handle:
        writer = csv.DictWriter(handle, MI_COLUMNS)
        if mode == "w":
            writer.writeheader()
        writer.writerows(rows)
    return path


def correlated(rng, shifts, n=N, shared=1.0, own=0.3):
    """Terms of several modes on the same samples: a shared per-sample part plus a small own part."""
    base = rng.normal(0, shared, n)
    return [base + shift + rng.normal(0, own, n) for shift in shifts]


# ---------------------------------------------------------------- paired bootstrap


def test_paired_interval_is_narrower_than_unpaired_for_positively_correlated_sides():
    rng = np.random.default_rng(1)
    a, b = correlated(rng, (0.1, 0.0))
    paired = paired_difference(a, b)
    unpaired = unpaired_difference(a.mean(), stderr_from_ci(*_terms_ci(a)), b.mean(), stderr_from_ci(*_terms_ci(b)), N)
    assert paired.diff == pytest.approx(a.mean() - b.mean(), abs=1e-12)
    assert paired.ci_high - paired.ci_low < 0.5 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.p_value < 0.05 < unpaired.p_value  # the effect is only visible paired
    # the paired stderr is that of the per-sample differences
    assert paired.stderr == pytest.approx((a - b).std(ddof=1) / math.sqrt(N), rel=0.1)


def coverage(trials, seed=0):
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(trials):
        a, b = correlated(rng, (0.05, 0.0), n=200)
        d = paired_difference(a, b, num_resamples=1000, seed=int(rng.integers(1 << 30)))
        covered += d.ci_low <= 0.05 <= d.ci_high
    return covered / trials


def test_paired_interval_covers_a_known_difference_in_95_percent_of_trials():
    assert 0.90 <= coverage(200) <= 0.99


def test_holm_known_values():
    assert holm([0.01, 0.04, 0.03, math.nan, 0.5]) == pytest.approx([0.04, 0.09, 0.09, math.nan, 0.5], nan_ok=True)
    assert holm([0.2, 0.2]) == [0.4, 0.4] and holm([]) == []


def test_recovered_fraction_of_constructed_terms():
    rng = np.random.default_rng(2)
    gll = rng.normal(0, 1, N)
    e2e = gll + 0.4 + rng.normal(0, 0.05, N)
    contsup = gll + 0.5 * (e2e - gll)  # recovers half of the loss, sample by sample
    value, low, high = ratio_of_differences(contsup, gll, e2e)
    assert value == pytest.approx(0.5, abs=1e-12) and low == pytest.approx(0.5) and high == pytest.approx(0.5)


# ---------------------------------------------------------------- seeds


def test_seed_mean_known_values():
    agg = seed_mean([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])
    half = 4.302652729911275 * math.sqrt(1 / 3)  # t_{0.975, 2} * s / sqrt(S), s^2 = 1
    assert (agg.mean, agg.seeds) == (2.0, 3)
    assert (agg.ci_low, agg.ci_high) == pytest.approx((2 - half, 2 + half))
    assert agg.var_samples == pytest.approx(0.01) and agg.var_seeds == pytest.approx(0.99)
    assert agg.dominant == "seeds"


def test_seed_aggregate_on_known_variance_rows():
    """v_s = mu + seed effect (tau) + estimator noise (se): the CI covers mu in ~95% of repetitions and the
    decomposition finds the larger source."""
    rng = np.random.default_rng(3)
    for tau, se, dominant in ((0.5, 0.05, "seeds"), (0.0, 0.3, "samples")):
        covered, found = 0, []
        for _ in range(300):
            values = 1.0 + rng.normal(0, tau, 5) + rng.normal(0, se, 5)
            agg = seed_mean(values, [se] * 5)
            covered += agg.ci_low <= 1.0 <= agg.ci_high
            found.append(agg.dominant)
        assert 0.90 <= covered / 300 <= 0.99
        assert found.count(dominant) > 0.7 * 300


def test_a_single_seed_where_seeds_were_asked_for_is_an_error():
    with pytest.raises(ValueError, match="at least 2 seeds, got 1"):
        seed_mean([1.0], [0.1])
    rows = [dict(mode="R0", K=4, seed=0, epoch=1, point="s1.b0", quantity="I(h;y)", estimator="p", depth=1,
                 module=0, kind="lower_bound", value=1.0, ci_low=0.9, ci_high=1.1)]
    with pytest.raises(ValueError, match="single seed"):
        seed_table(rows)


def test_seed_table_means_over_seeds():
    rows = [dict(mode="R0", K=4, seed=s, epoch=1, point="s1.b0", quantity="I(h;y)", estimator="p", depth=1,
                 module=0, kind="lower_bound", value=v, ci_low=v - 0.196, ci_high=v + 0.196)
            for s, v in enumerate((1.0, 2.0, 3.0))]
    (row,) = seed_table(rows)
    assert row["value"] == 2.0 and row["seeds"] == 3 and row["var_samples"] == pytest.approx(0.01, rel=1e-3)


# ---------------------------------------------------------------- compare() on tables


def test_sidecar_round_trip(tmp_path):
    table = tmp_path / "mi.csv"
    ids = np.array([5, 2, 9])
    first = write_terms(table, "run", 2, "s1.b0", ids, {("I(h;y)", "p"): np.array([1.0, 2.0, 3.0])})
    again = write_terms(table, "run", 2, "s1.b0", ids, {("I(h;y)", "p"): np.array([1.0, 2.0, 3.0])})
    write_terms(table, "run", 2, "s1.b0", ids, {("I(h;x)", "q"): np.array([0.5, 0.5, 0.5])})  # a later analysis
    assert first == again and len(list((tmp_path / "mi.samples" / "run").iterdir())) == 2
    stored = read_terms(table)
    assert set(stored) == {("run", "2", "s1.b0", "I(h;y)", "p"), ("run", "2", "s1.b0", "I(h;x)", "q")}
    assert stored[("run", "2", "s1.b0", "I(h;y)", "p")].ids.tolist() == [5, 2, 9]
    assert stored[("run", "2", "s1.b0", "I(h;y)", "p")].terms.tolist() == [1.0, 2.0, 3.0]


def test_compare_pairs_modes_and_reports_the_recovered_fraction(tmp_path):
    rng = np.random.default_rng(4)
    sides = {}
    for point in ("s1", "s2"):
        e2e, gll, contsup = correlated(rng, (0.3, 0.0, 0.15))
        sides.update({("E2E", 1, 0, point): e2e, ("R0", 4, 0, point): gll, ("E", 4, 0, point): contsup})
    table = write_table(tmp_path / "mi.csv", sides)
    rows = compare([table], out=tmp_path / "comparisons.csv")
    assert [(r["a"], r["b"], r["point"]) for r in rows] == [("R0", "E2E", "s1"), ("R0", "E2E", "s2"),
                                                            ("E", "R0", "s1"), ("E", "R0", "s2")]
    for row in rows:
        assert row["paired"] and row["p_holm"] < 0.05 and row["seeds"] == 1 and row["n"] == N
    gains = [r for r in rows if r["a"] == "E"]
    assert all(0.2 < r["recovered_low"] < r["recovered"] < r["recovered_high"] < 0.8 for r in gains)
    written = list(csv.DictReader(open(tmp_path / "comparisons.csv")))
    assert written[0]["paired"] == "true" and written[0]["recovered"] == ""
    summary = render_comparisons(written, labels={"s1": "after module 0"})
    line = next(line for line in summary.splitlines() if line.startswith("| after module 0 |"))
    cells = line.strip("| ").split(" | ")
    loss = rows[0]
    expected = f"{loss['diff']:+.3f} [{loss['ci_low']:+.3f}, {loss['ci_high']:+.3f}]"
    assert cells[1] == expected + ", p_holm < 0.0001" and cells[1].endswith("p_holm < 0.0001") and cells[3].endswith("%]")
    assert "Not significant (inside the noise at this size): none." in summary


def test_recovered_fraction_is_absent_when_the_gll_loss_is_not_significant(tmp_path):
    rng = np.random.default_rng(5)
    e2e, gll, contsup = correlated(rng, (0.0, 0.0, 0.3))
    table = write_table(tmp_path / "mi.csv", {("E2E", 1, 0, "s1"): e2e, ("R0", 4, 0, "s1"): gll,
                                              ("E", 4, 0, "s1"): contsup})
    loss, gain = compare([table])
    assert loss["p_holm"] >= 0.05 and gain["p_holm"] < 0.05
    assert "recovered" not in gain and gain["recovered_note"] == NOT_SIGNIFICANT


def test_recovered_fraction_is_absent_where_gll_is_above_e2e(tmp_path):
    rng = np.random.default_rng(11)
    e2e, gll, contsup = correlated(rng, (-0.3, 0.0, 0.1))
    table = write_table(tmp_path / "mi.csv", {("E2E", 1, 0, "s1"): e2e, ("R0", 4, 0, "s1"): gll,
                                              ("E", 4, 0, "s1"): contsup})
    loss, gain = compare([table])
    assert loss["diff"] > 0 and loss["p_holm"] < 0.05
    assert "recovered" not in gain and gain["recovered_note"] == NO_LOSS


def test_different_sample_sets_are_never_paired(tmp_path):
    rng = np.random.default_rng(6)
    gll, contsup = correlated(rng, (0.0, 0.1))
    table = write_table(tmp_path / "mi.csv", {("R0", 4, 0, "s1"): gll})
    write_table(table, {("E", 4, 0, "s1"): contsup}, ids=np.arange(N) + 1)  # other held-out samples
    (row,) = compare([table])
    assert row["paired"] is False and "different held-out sample sets" in row["note"]
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * 1.959963984540054 * math.hypot(
        stderr_from_ci(*_terms_ci(gll)), stderr_from_ci(*_terms_ci(contsup))))


def test_estimators_without_terms_fall_back_to_an_unpaired_interval(tmp_path):
    rng = np.random.default_rng(7)
    gll, contsup = correlated(rng, (0.0, 0.1))
    table = write_table(tmp_path / "mi.csv", {("R0", 4, 0, "s1"): gll, ("E", 4, 0, "s1"): contsup},
                        estimator="infonce", store_terms=False)
    (row,) = compare([table])
    assert row["paired"] is False and row["note"] == "unpaired: infonce is not a mean of per-sample terms"


def test_points_on_one_side_only_are_explicit_gaps(tmp_path):
    rng = np.random.default_rng(8)
    a, b, c = correlated(rng, (0.0, 0.1, 0.2))
    table = write_table(tmp_path / "mi.csv", {("R0", 4, 0, "s1"): a, ("R0", 4, 0, "s2"): b, ("E", 4, 0, "s1"): c})
    rows = compare([table], out=tmp_path / "c.csv")
    gap = next(r for r in rows if r["point"] == "s2")
    assert "diff" not in gap and gap["note"] == "no I(h;y) probe_linear row of E at this point"
    assert next(r for r in csv.DictReader(open(tmp_path / "c.csv")) if r["point"] == "s2")["diff"] == ""


def test_seeds_are_paired_by_seed_and_aggregated(tmp_path):
    rng = np.random.default_rng(9)
    sides = {}
    for seed in range(3):
        e2e, gll, contsup = correlated(rng, (0.3 + 0.05 * seed, 0.0, 0.1))
        sides.update({("E2E", 1, seed, "s1"): e2e, ("R0", 4, seed, "s1"): gll, ("E", 4, seed, "s1"): contsup})
    table = write_table(tmp_path / "mi.csv", sides)
    loss, gain = compare([table], seeds=[0, 1, 2])
    per_seed = [sides[("R0", 4, s, "s1")].mean() - sides[("E2E", 1, s, "s1")].mean() for s in range(3)]
    assert loss["seeds"] == 3 and loss["diff"] == pytest.approx(np.mean(per_seed))
    # the loss moves by 0.05 nats from seed to seed, far more than its sample stderr (~0.016)
    assert loss["dominant_variance"] == "seeds" and gain["dominant_variance"] == "samples"
    assert gain["recovered_note"] in ("CI by resampling seeds", NOT_SIGNIFICANT)
    summary = render_comparisons([loss, gain])
    assert "Over 3 seeds: seed-to-seed variation dominates the uncertainty of 1 of 2 differences" in summary
    with pytest.raises(ValueError, match=r"seeds \[0, 3\] asked for"):
        compare([table], seeds=[0, 3])


def test_bad_pairs_name_the_problem(tmp_path):
    rng = np.random.default_rng(10)
    (a,) = correlated(rng, (0.0,))
    table = write_table(tmp_path / "mi.csv", {("R0", 4, 0, "s1"): a})
    with pytest.raises(ValueError, match=r"mode\(s\) \['R1E'\] that the tables do not hold"):
        compare([table], pairs=["R1E:R0"])
    with pytest.raises(ValueError, match="A:B"):
        compare([table], pairs=["R1E-R0"])


def test_the_summary_has_a_column_per_rule_beside_the_contsup_modes():
    """Rows of rules (a = R0, rule_a = auglocal) are told apart from GLL and from each other by their
    label, each in its own column with its own recovered fraction."""
    def row(a, rule_a, b, diff, recovered=""):
        return {"point": "s1", "quantity": "I(h;y)", "estimator": "probe_linear", "kind": "lower_bound",
                "a": a, "rule_a": rule_a, "b": b, "rule_b": "gll", "K": "4", "epoch": "3", "diff": diff,
                "ci_low": diff - 0.01, "ci_high": diff + 0.01, "p_holm": 0.001, "paired": "true", "seeds": "1",
                "recovered": recovered, "recovered_low": recovered and recovered - 0.1,
                "recovered_high": recovered and recovered + 0.1, "recovered_note": ""}
    rows = [row("R0", "gll", "E2E", -0.2), row("E", "gll", "R0", 0.1, 0.5),
            row("R0", "man", "R0", 0.05, 0.25), row("R0", "auglocal", "R0", 0.2, 1.0)]
    summary = render_comparisons(rows)
    head, _, line = [s for s in summary.splitlines() if s.startswith("|")]
    assert head == ("| boundary | GLL - E2E | E - GLL | R0@auglocal - GLL | R0@man - GLL | E recovered | "
                    "R0@auglocal recovered | R0@man recovered |")
    assert line == ("| s1 | -0.200 [-0.210, -0.190], p_holm 0.001 | +0.100 [+0.090, +0.110], p_holm 0.001 | "
                    "+0.200 [+0.190, +0.210], p_holm 0.001 | +0.050 [+0.040, +0.060], p_holm 0.001 | "
                    "50% [40%, 60%] | 100% [90%, 110%] | 25% [15%, 35%] |")
    assert "R0@man - GLL at s1" in summary
