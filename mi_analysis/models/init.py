"""Common random numbers: every part the package builds is initialised from (seed, part name).

Runs that differ only in their context mode (E2E, R0, E, R1, R1E, ...) should differ in nothing
else, so that a difference between them is the mode's and not the initialisation's. Drawing
every part from one global generator breaks that: a mode that builds context encoders draws
from it before the auxiliary heads are initialised, so the heads of module 0 would start
elsewhere in R0 and in E. Here each named part ("units.stem", "aux_heads.0",
"context.encoders.cut3_E", "classifier", ...) gets its own generator seeded by a SHA-256 hash
of (seed, name); a part that exists in two modes is bit-identical in both, and building a model
leaves the global torch generator where it was (data order and augmentation draws stay the
same in every mode).

The init itself is the one the part had before: PyTorch's default init of every layer, then
the papers' conv/BN init (resnet.init_conv_bn_).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from .resnet import init_conv_bn_

DEFAULT_SEED = 0  # the seed of a model built without one (build, build_model, LocalNet)


def part_seed(seed: int, name: str) -> int:
    """A 63-bit generator seed for part `name` of a model built with `seed` (stable across
    processes, platforms and Python versions: SHA-256, not hash())."""
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@contextlib.contextmanager
def global_generator_kept() -> Iterator[None]:
    """Run the body (e.g. building layers, which draw their default init) and put the CPU
    generator back where it was."""
    with torch.random.fork_rng(devices=[]):
        yield


def init_parts_(parts: Mapping[str, nn.Module], seed: int) -> None:
    """Initialise each part from its own generator (part_seed(seed, name)), in place: every layer's
    reset_parameters (PyTorch's defaults, BN running statistics cleared), then init_conv_bn_.
    The global generator is left as it was."""
    for name, part in parts.items():
        with global_generator_kept():
            torch.default_generator.manual_seed(part_seed(seed, name))  # CPU only: CUDA streams untouched
            for layer in part.modules():
                reset = getattr(layer, "reset_parameters", None)
                if callable(reset):
                    reset()
            init_conv_bn_(part)
