"""Shared fixtures for the estimator tests."""

import pytest
import torch


@pytest.fixture
def single_thread():
    """Run a test on one torch thread: on a shared 2-core machine, two OpenMP threads that wait on
    each other's barriers are many times slower than one. Restores the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
