"""Checkpoints and the code version of a run directory."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

from mi_analysis._util.files import atomic_write
from mi_analysis._util.version import __version__, check_format_version
from mi_analysis.training.config import RUN_FORMAT_VERSION


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (model, optimizer, epoch, config, metrics, rng) with the run format version."""
    atomic_write(path, lambda f: torch.save({**state, "format_version": RUN_FORMAT_VERSION}, f), mode="wb")


def load_checkpoint(path: Path, map_location: Any) -> dict[str, Any]:
    """A checkpoint's state, refused when its format version is newer than this code reads."""
    state = torch.load(path, map_location=map_location, weights_only=False)
    check_format_version(state.get("format_version"), RUN_FORMAT_VERSION, f"checkpoint {path}")
    return state


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
