"""Where tensors go: one rule for every entry point."""

from __future__ import annotations

import torch


def check_device_name(name: str, what: str = "device") -> str:
    """`name` if it names a device this package can use (auto, cpu, cuda, cuda:N), whether or not
    this machine has it (a config written on a GPU machine still reads on a CPU one)."""
    if name == "auto":
        return name
    try:
        device = torch.device(name) if isinstance(name, str) else None
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"{what} must be cpu, cuda, cuda:N or auto, got {name!r}")
    return name


def resolve_device(name: str | torch.device, what: str = "device") -> torch.device:
    """"auto" -> cuda when available, else cpu; otherwise cpu, cuda or cuda:N, checked here so that a
    typo ("tpu") or a missing GPU is a one-line error naming `what` (the argument or flag)."""
    if isinstance(name, torch.device):
        name = str(name)
    check_device_name(name, what)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}={name!r} but CUDA is not available on this machine; use 'auto' or 'cpu'")
    return device
