"""Test-session settings shared by every test file.

The tests run tiny models and tensors. With several intra-op threads, the OpenMP barriers of such
small operations dominate (on a busy 2-core machine the same test ran 5-30x slower with two
threads than with one), and one thread also makes every sum run in one fixed order. So the whole
session runs torch on one thread; benchmarks, not tests, measure multi-threaded speed.
"""

import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.fixture
def tiny_vit(monkeypatch):
    """The arch string of docs/examples/tiny_vit.py's factory, importable for the test."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    yield "tiny_vit:tiny_vit"
    sys.modules.pop("tiny_vit", None)


@pytest.fixture
def two_threads():
    """The caller runs 2 intra-op threads (restored to the session's count after the test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
