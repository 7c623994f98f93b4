"""mi.csv under concurrency and with rows repeated by older versions: nothing lost, nothing twice."""

import csv
import multiprocessing

import pytest

from mi_analysis.analysis import AnalysisConfig
from mi_analysis.analysis.table import MI_COLUMNS, MiTable, read_rows


def _row(run, i, value=0.5):
    return {"run": run, "mode": "E", "K": 2, "seed": 0, "epoch": 1, "point": f"p{i}", "depth": i, "module": 0,
            "quantity": "I(h;y)", "estimator": "probe_linear", "kind": "lower_bound", "value": value,
            "ci_low": 0.4, "ci_high": 0.6, "n": 10, "sample_set": "0123abcd", "notes": "", "rule": "gll"}


def _writer(path, writer, n, barrier):
    """One process: its own rows one append at a time (many lock round trips), and the "shared" rows
    every process writes, checking done() first as the analysis does; between that check and the
    append another process may write the key, which must then still appear once."""
    table = MiTable(path, AnalysisConfig())
    barrier.wait()  # all processes append at the same time
    for i in range(n):
        table.append([_row(f"run{writer}", i)])
        if not table.done(("shared", "1", f"p{i}", "I(h;y)", "probe_linear")):
            table.append([_row("shared", i)])


def test_processes_appending_into_one_table_lose_no_row_and_write_none_twice(tmp_path):
    path, writers, n = tmp_path / "all.csv", 4, 25
    context = multiprocessing.get_context("fork")  # real processes, without importing torch again
    barrier = context.Barrier(writers)
    procs = [context.Process(target=_writer, args=(path, w, n, barrier)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * writers
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    keys = [(r["run"], r["point"]) for r in rows]
    expected = {(f"run{w}", f"p{i}") for w in range(writers) for i in range(n)} | {("shared", f"p{i}") for i in range(n)}
    assert len(keys) == len(set(keys)) == len(expected) == (writers + 1) * n
    assert set(keys) == expected


def test_a_table_opened_before_another_process_wrote_skips_the_rows_written_meanwhile(tmp_path):
    path = tmp_path / "mi.csv"
    first, second = MiTable(path, AnalysisConfig()), MiTable(path, AnalysisConfig())
    first.append([_row("a", 0), _row("a", 1)])
    assert not second.done(("a", "1", "p0", "I(h;y)", "probe_linear"))  # opened before the write
    second.append([_row("a", 0), _row("a", 2)])
    assert [(r["run"], r["point"]) for r in read_rows(path)] == [("a", "p0"), ("a", "p1"), ("a", "p2")]
    with pytest.raises(ValueError, match="already has a row"):  # one process repeating itself is a bug
        second.append([_row("a", 2)])


def test_a_second_process_with_other_settings_cannot_slip_into_a_new_table(tmp_path):
    path = tmp_path / "mi.csv"
    first, second = MiTable(path, AnalysisConfig()), MiTable(path, AnalysisConfig(fit_size=50))
    first.append([_row("a", 0)])
    with pytest.raises(ValueError, match="other analysis settings"):
        second.append([_row("a", 1)])


def _write(path, rows):
    MiTable(path, AnalysisConfig()).append(rows[:1])
    with open(path, "a", newline="") as handle:  # as an unlocked older version could leave it
        writer = csv.writer(handle, lineterminator="\n")
        for row in rows[1:]:
            writer.writerow([str(row[c]) for c in MI_COLUMNS])


def test_repeated_identical_rows_of_an_older_version_are_read_once_with_a_warning(tmp_path):
    path = tmp_path / "mi.csv"
    _write(path, [_row("a", 0), _row("a", 0), _row("a", 1)])
    with pytest.warns(UserWarning, match="1 repeated row"):
        assert [r["point"] for r in read_rows(path)] == ["p0", "p1"]


def test_conflicting_rows_of_one_key_are_refused_naming_the_key(tmp_path):
    path = tmp_path / "mi.csv"
    _write(path, [_row("a", 0), _row("a", 0, value=0.7)])
    with pytest.raises(ValueError, match=r"two different rows .*'a', '1', 'p0'.*value: '0.5' / '0.7'"):
        read_rows(path)
    with pytest.raises(ValueError, match="two different rows"):
        MiTable(path, AnalysisConfig())


def test_a_folder_as_the_table_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is a folder; expected a csv file"):
        MiTable(tmp_path, AnalysisConfig())
