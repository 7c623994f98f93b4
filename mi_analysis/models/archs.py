"""The three kinds of `arch` string, checked where a ModelConfig is made (docs/models.md).

- a CIFAR ResNet of the package: "resnet20", "resnet32", "resnet56", "resnet110";
- "torchvision:NAME": NAME as torchvision.models.get_model knows it, split into units by a rule
  per family (models/torchvision_units.py);
- "package.module:factory": a function imported from an importable module, called with
  num_classes=, in_channels=, image_size= (models/factory.py).

Only the spelling is checked here (and that torchvision knows NAME); a factory is imported when
the model is built, so that a config can be read where the factory's module is missing.
"""

from __future__ import annotations

import difflib
import re

from .resnet import available_archs

TORCHVISION_PREFIX = "torchvision:"
RESNET, TORCHVISION, FACTORY = "resnet", "torchvision", "factory"

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_FACTORY = re.compile(rf"({_IDENTIFIER}(?:\.{_IDENTIFIER})*):({_IDENTIFIER})")

ARCH_HELP = (f"backbone: a CIFAR ResNet ({', '.join(available_archs())}), torchvision:NAME "
             "(e.g. torchvision:resnet18) or package.module:factory")


def torchvision_names() -> list[str]:
    """Every classification model torchvision.models.get_model builds (weights are never loaded)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def arch_kind(arch: str) -> str:
    """RESNET, TORCHVISION or FACTORY for an arch string that check_arch accepts."""
    if arch in available_archs():
        return RESNET
    return TORCHVISION if arch.startswith(TORCHVISION_PREFIX) else FACTORY


def check_arch(value, what: str = "arch") -> str:
    """`value` if it is one of the three kinds of arch string, else a ValueError naming `what`."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {value!r}")
    if value in available_archs():
        return value
    if value.startswith(TORCHVISION_PREFIX):
        name = value.removeprefix(TORCHVISION_PREFIX)
        known = torchvision_names()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            hint = f"close matches: {', '.join(TORCHVISION_PREFIX + c for c in close)}" if close \
                else f"torchvision knows {', '.join(known)}"
            raise ValueError(f"{what}={value!r}: torchvision has no model {name!r}; {hint}")
        return value
    if _FACTORY.fullmatch(value):
        return value
    raise ValueError(f"{what}={value!r} is unknown; expected one of {available_archs()}, "
                     "torchvision:NAME or package.module:factory")


def factory_path(arch: str) -> tuple[str, str]:
    """(module, function name) of a "package.module:factory" arch."""
    module, name = _FACTORY.fullmatch(arch).groups()
    return module, name


def folder_label(arch: str) -> str:
    """The arch as it appears in run-folder names: file-system safe, no ':' ("torchvision.resnet18")."""
    return arch.replace(":", ".")
