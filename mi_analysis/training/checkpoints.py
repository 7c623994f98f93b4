"""Checkpoints and the code version of a run directory."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from mi_analysis._util.files import atomic_write
from mi_analysis._util.version import __version__


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(state, f), mode="wb")


def code_version() -> str:
    """Package version plus the git commit (and a '+dirty' mark) when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return f"mi_analysis {__version__} (git {commit}), torch {torch.__version__}"
