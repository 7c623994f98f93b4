"""The intra-op thread policy: resolution, the per-call setting and its restoration."""
import pytest
import torch

from mi_analysis._util import threads
from mi_analysis._util.threads import auto_threads, intra_op_threads, resolve_threads
from mi_analysis.estimators import estimate


def test_auto_leaves_the_cores_others_use(monkeypatch, two_threads):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for busy, expected in ((0, 2), (1, 2), (3, 1), (9, 1)):   # capped by torch's 2, at least 1
        monkeypatch.setattr(threads, "busy_elsewhere", lambda busy=busy: busy)
        assert auto_threads() == expected
        assert resolve_threads("auto") == resolve_threads(None) == expected


def test_busy_elsewhere_reads_a_count():
    assert threads.busy_elsewhere() >= 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "many"])
def test_bad_thread_counts_are_named(bad):
    with pytest.raises(ValueError, match="threads must be 'auto' or an int >= 1"):
        resolve_threads(bad)


def test_set_inside_the_call_and_restored_also_on_error(two_threads):
    with intra_op_threads(1) as count:
        assert count == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), intra_op_threads(1):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_estimate_runs_with_the_asked_threads_and_same_value(monkeypatch, two_threads):
    calls = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real_set(n))[1])
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = x + torch.randn(400, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    one = estimate(x, y, method="ksg", k=3, threads=1).value
    assert calls == [1, 2] and torch.get_num_threads() == 2   # set for the call, then restored
    calls.clear()
    two = estimate(x, y, method="ksg", k=3, threads=2).value
    assert calls == []                                        # already 2: nothing to change
    assert one == pytest.approx(two, rel=1e-12)
    with pytest.raises(ValueError, match="threads must be"):
        estimate(x, y, method="ksg", threads=0)
