"""Starting the processes of a run: `mi-analysis train --nproc N` or torchrun.

    mi-analysis train --nproc 2 --parallel module --schedule async --modules 4 ...
    torchrun --nproc-per-node 2 -m mi_analysis.cli train --parallel module --modules 4 ...

With --nproc, spawn() starts N local processes that meet through a TCP store hosted by the
launching process on a free loopback port, so no port is ever guessed. The processes are forked
from multiprocessing's fork server, which has imported torch and this package once (it never
runs torch ops, so its children start clean, CUDA included): a launch costs no fresh imports. Under torchrun, every process runs the command line itself and joins through
torchrun's environment (env://). Either way rank 0 writes the run directory.

When a rank fails, the launcher waits for the others, which fail soon after with a PeerError
(a closed connection is seen at once, a silent peer after timeout_s), kills any that outlive
timeout_s plus a grace period, and raises one LaunchError that lists every rank's error,
root causes first.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mi_analysis._util.checks import int_at_least
from mi_analysis._util.device import resolve_device
from mi_analysis.training.config import RunConfig
from mi_analysis.training.distributed.data_parallel import DataParallelTrainer
from mi_analysis.training.distributed.module_parallel import ModuleParallelTrainer
from mi_analysis.training.distributed.group import DEFAULT_TIMEOUT_S, PeerError, backend_for, join, leave
from mi_analysis.training.distributed.rank_trainer import check_setup
from mi_analysis.training.trainer import Trainer, check_data_parallel_width, read_run_config

_GRACE_S = 10.0  # after a failure, on top of timeout_s, before the remaining processes are killed
_REPORT_CHARS = 4000  # of a rank's error message sent to the launcher (the rank prints it all)


class LaunchError(RuntimeError):
    """One or more ranks of a spawned run failed; the message has every rank's error."""


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ
                                                   and "LOCAL_RANK" in os.environ)


def spawn(fn: Callable[..., Any], nproc: int, args: tuple = (), *, backend: str = "gloo",
          timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None) -> None:
    """Run fn(*args) in nproc new local processes, ranks 0..nproc-1 of one process group.

    fn and args must be picklable (fn a module-level function). threads: torch threads per
    process (default: the CPU cores shared out, at least 1). Raises LaunchError if any rank fails.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    threads = threads or max(1, (os.cpu_count() or 1) // nproc)
    store = dist.TCPStore("127.0.0.1", 0, world_size=nproc, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=timeout_s))
    context = mp.get_context("forkserver")
    # imported once by the server when it starts (first launch); torch._dynamo is what torch.optim
    # imports on first use, seconds on a busy machine
    context.set_forkserver_preload([__name__, "torch._dynamo"])
    pipes = [context.Pipe(duplex=False) for _ in range(nproc)]  # (launcher's end, rank's end)
    processes = [context.Process(target=_rank_main,
                                 args=(rank, nproc, store.port, backend, timeout_s, threads, fn, args, pipes[rank][1]))
                 for rank in range(nproc)]
    try:
        for process, (_, rank_end) in zip(processes, pipes):
            process.start()
            rank_end.close()  # the rank holds its own copy
        _wait_for(processes, deadline_after_failure=timeout_s + _GRACE_S)
    finally:  # e.g. Ctrl-C in the launcher: no rank outlives it
        for process in processes:
            if process.is_alive():
                process.kill()
    errors = []
    for rank, (process, (reports, _)) in enumerate(zip(processes, pipes)):
        report = _read_report(reports)
        if report is not None:
            errors.append(report)
        elif process.exitcode != 0:
            errors.append((rank, "killed", f"exit code {process.exitcode} (killed after the others failed, or crashed)"))
    if errors:
        errors.sort(key=lambda e: (e[1] in (PeerError.__name__, "killed"), e[0]))  # root causes first
        lines = [f"rank {rank}: {kind}: {message}" for rank, kind, message in errors]
        raise LaunchError(f"{len(errors)} of {nproc} processes failed:\n  " + "\n  ".join(lines))


def _read_report(connection):
    """The error a rank sent, or None (a rank that succeeded closes its end without sending)."""
    try:
        return connection.recv() if connection.poll() else None
    except EOFError:
        return None


def _wait_for(processes, deadline_after_failure: float) -> None:
    deadline = None
    while any(p.is_alive() for p in processes):
        if deadline is None and any(p.exitcode not in (None, 0) for p in processes):
            deadline = time.monotonic() + deadline_after_failure
        if deadline is not None and time.monotonic() > deadline:
            for p in processes:
                if p.is_alive():
                    p.kill()
        for p in processes:
            p.join(timeout=0.05)
    for p in processes:
        p.join()


def _rank_main(rank, world_size, port, backend, timeout_s, threads, fn, args, report) -> None:
    """Body of one spawned process: join the group, run fn, report an error to the launcher."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world_size))
    torch.set_num_threads(threads)
    try:
        store = dist.TCPStore("127.0.0.1", port, world_size=world_size, is_master=False,
                              timeout=timedelta(seconds=timeout_s))
        join(backend, rank=rank, world_size=world_size, timeout_s=timeout_s, store=store)
        fn(*args)
    except BaseException as err:  # noqa: BLE001 - every failure is reported, then the process exits 1
        message = str(err).strip() or repr(err)
        print(f"[rank {rank}] failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
        summary = message.splitlines()[0] if isinstance(err, PeerError) else message
        report.send((rank, type(err).__name__, summary[:_REPORT_CHARS]))  # short: a pipe holds 64 KiB
        sys.exit(1)
    leave()


# -------------------------------------------------------------------- training entry
def train_parallel(config: RunConfig | None, *, resume: Path | None = None, nproc: int | None = None,
                   parallel: str | None = None, schedule: str | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S, allow_world_size_change: bool = False) -> int:
    """`mi-analysis train` with several processes: a new run from `config`, or `resume` a run
    (config, when given, must equal the run's). Under torchrun this process is one rank;
    otherwise nproc processes are spawned here (nproc 1: the plain single-process trainer).
    Returns the exit status; settings that cannot work raise ValueError before anything starts
    (a resume over another data parallel width too, unless `allow_world_size_change`)."""
    parallel, schedule = parallel or "data", schedule or "sync"
    if nproc is not None:
        int_at_least(nproc, "nproc", 1)
    effective = config if resume is None else read_run_config(resume).resumed_with(config, resume)
    backend = backend_for(resolve_device(effective.train.device))
    args = (config, resume, parallel, schedule, timeout_s, allow_world_size_change)
    world_size = int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else (nproc or 1)
    if resume is not None:
        check_data_parallel_width(resume, world_size if parallel == "data" else 1, allow_world_size_change)
    if launched_by_torchrun():
        if nproc not in (None, world_size):
            raise ValueError(f"--nproc {nproc} differs from torchrun's world size {world_size}; leave --nproc out")
        check_setup(effective, parallel, world_size, schedule)
        join(backend, rank=int(os.environ["RANK"]), world_size=world_size, timeout_s=timeout_s)
        try:
            train_rank(*args)
        finally:
            leave()
        return 0
    nproc = nproc or 1
    check_setup(effective, parallel, nproc, schedule)
    if backend == "nccl" and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc} with CUDA needs {nproc} GPUs, this machine has {torch.cuda.device_count()}")
    if nproc == 1:
        trainer = (Trainer.resume(resume, config, allow_world_size_change=allow_world_size_change) if resume
                   else Trainer.start(config))
        _report(trainer)
        return 0
    try:
        spawn(train_rank, nproc, args, backend=backend, timeout_s=timeout_s)
    except LaunchError as err:
        print(f"mi-analysis train: error: {err}", file=sys.stderr)
        return 1
    return 0


def train_rank(config: RunConfig | None, resume: Path | None, parallel: str, schedule: str,
               timeout_s: float, allow_world_size_change: bool = False) -> None:
    """One rank of a run (in a joined process group): start or resume, train, rank 0 reports."""
    cls = DataParallelTrainer if parallel == "data" else ModuleParallelTrainer
    options = {"schedule": schedule, "timeout_s": timeout_s}
    trainer = (cls.resume(resume, config, allow_world_size_change=allow_world_size_change, **options) if resume
               else cls.start(config, **options))
    _report(trainer)


def _report(trainer) -> None:
    """Train, printing (on rank 0) the run directory first and the summary at the end."""
    if trainer.is_main_process:
        print(f"run directory: {trainer.run_dir}", flush=True)
    summary = trainer.run()
    if trainer.is_main_process:
        print(json.dumps({k: v for k, v in summary.items() if k != "parameters"}, indent=2), flush=True)
