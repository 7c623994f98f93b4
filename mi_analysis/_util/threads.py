"""How many intra-op (OpenMP) threads a compute call uses, set only for the call.

Why: on a CPU shared with other work, torch's default (one thread per core) makes every
parallel kernel wait at its barrier for the slowest thread, and a thread that has lost its
core stalls all of them: a KSG call beside two busy processes on 2 cores took 3.3x its quiet
time with 2 threads, while a fair share of the cores is 2x. So the estimators run on

    "auto" (the default): the cores this process may use minus the threads of other processes
        that are running or waiting to run right now (/proc/loadavg's running count, else the
        1-minute load average), at least 1 and at most torch.get_num_threads();
    an int n >= 1: exactly n threads.

The setting is applied inside the call and restored afterwards (`intra_op_threads`), so a
caller's own torch.set_num_threads is the ceiling of "auto" and is never changed for good.
Results do not depend on the thread count beyond float rounding of parallel sums.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch

AUTO = "auto"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_elsewhere() -> int:
    """Threads of other processes running or runnable now (the caller's own thread excluded)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
        return max(0, running - 1)  # the reading thread itself is running
    except (OSError, ValueError, IndexError):
        try:
            return round(os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0


def auto_threads() -> int:
    """The "auto" thread count: the cores left free by other work, in [1, torch.get_num_threads()]."""
    return max(1, min(torch.get_num_threads(), usable_cores() - busy_elsewhere()))


def resolve_threads(threads: int | str | None, name: str = "threads") -> int:
    """The thread count for `threads` ("auto" or None: auto_threads(); an int >= 1: itself)."""
    if threads is None or threads == AUTO:
        return auto_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{name} must be 'auto' or an int >= 1, got {threads!r}")
    return threads


@contextlib.contextmanager
def intra_op_threads(threads: int | str | None = AUTO, name: str = "threads") -> Iterator[int]:
    """Run the block with `threads` intra-op threads (see resolve_threads); restores the count after."""
    count = resolve_threads(threads, name)
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
