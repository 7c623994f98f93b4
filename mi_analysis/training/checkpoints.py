"""Checkpoints and the code version of a run directory.

A checkpoint file (run format 2) is a header and a payload: the line MAGIC, one line of JSON
(format_version, the payload's length and SHA-256, the SHA-256 of the run's config, the epoch),
then the payload, the bytes of torch.save(state). Loading checks the length (a truncated file),
the checksum (flipped bytes) and, when the run's config is given, that the checkpoint was written
under that config, before torch reads a byte of the payload. Checkpoints of format 1 (a bare
torch.save file, no checksum) still load: they start with a zip signature, not MAGIC, and are
read as they are, without an integrity check.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import torch

from mi_analysis._util.config import flatten
from mi_analysis._util.files import atomic_write
from mi_analysis._util.version import __version__, check_format_version
from mi_analysis.training.config import CONFIG_EDITS, RUN_FORMAT_VERSION, RUNTIME_FIELDS, RunConfig

MAGIC = b"mi_analysis checkpoint\n"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt, unreadable or of another config."""


class ConfigMismatch(CheckpointError):
    """A sound checkpoint written under another config than the one it is loaded with."""


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of a config dict (RunConfig.to_dict()) in a canonical JSON form."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (model, optimizer, epoch, config, metrics, rng) with the run format version,
    behind a header holding the payload's length and SHA-256 and the config's hash."""
    buffer = io.BytesIO()
    torch.save({**state, "format_version": RUN_FORMAT_VERSION}, buffer)
    payload = buffer.getvalue()
    header = {"format_version": RUN_FORMAT_VERSION, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest(), "config_sha256": config_hash(state["config"]),
              "epoch": state["epoch"]}

    def write(handle) -> None:
        handle.write(MAGIC + json.dumps(header).encode() + b"\n")
        handle.write(payload)

    atomic_write(path, write, mode="wb")


def load_checkpoint(path: Path, map_location: Any, config: RunConfig | None = None) -> dict[str, Any]:
    """A checkpoint's state after its integrity checks (CheckpointError saying what is wrong);
    refused when its format version is newer than this code reads, or when `config` is given and
    the checkpoint was written under another config (the differences listed; RUNTIME_FIELDS and
    CONFIG_EDITS may differ)."""
    path = Path(path)
    data = path.read_bytes()
    header = None
    if data.startswith(MAGIC):
        line, _, payload = data[len(MAGIC):].partition(b"\n")
        try:
            header = json.loads(line)
            expected, checksum = int(header["bytes"]), str(header["sha256"])
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"checkpoint {path} is corrupt: its header is unreadable") from None
        check_format_version(header.get("format_version"), RUN_FORMAT_VERSION, f"checkpoint {path}")
        if len(payload) != expected:
            raise CheckpointError(f"checkpoint {path} is truncated or damaged: it holds {len(payload)} bytes of "
                                  f"the {expected} written")
        if hashlib.sha256(payload).hexdigest() != checksum:
            raise CheckpointError(f"checkpoint {path} is corrupt: its SHA-256 differs from the one written with it")
    else:  # format 1: a bare torch.save file, without checksum
        payload = data
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint {path} cannot be read (truncated or corrupt: {reason})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not an mi_analysis checkpoint")
    check_format_version(state.get("format_version"), RUN_FORMAT_VERSION, f"checkpoint {path}")
    if config is not None:
        _check_config(path, state, header, config)
    return state


def _check_config(path: Path, state: dict[str, Any], header: dict[str, Any] | None, config: RunConfig) -> None:
    if header is not None and header.get("config_sha256") == config_hash(config.to_dict()):
        return
    try:  # a format-1 checkpoint's config may lack fields added since: read it as this code does
        written = flatten(RunConfig.from_dict(state["config"]).to_dict())
    except (ValueError, TypeError):
        written = flatten(state["config"])
    now = flatten(config.to_dict())
    differences = [f"{key}: {written.get(key)!r} in the checkpoint, {now.get(key)!r} now"
                   for key in sorted(set(written) | set(now))
                   if written.get(key) != now.get(key) and key not in RUNTIME_FIELDS + CONFIG_EDITS]
    if differences:
        raise ConfigMismatch(f"checkpoint {path} was written under another config ({'; '.join(differences)})")


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
