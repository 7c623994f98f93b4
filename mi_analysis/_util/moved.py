"""Module paths of earlier releases, kept importable with a DeprecationWarning.

The package was reorganised into one-way layers (see docs/architecture.md); code written against
the old paths (``mi_analysis.config``, ``mi_analysis.plots``, ...) keeps working and is told where
the module lives now.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "mi_analysis.config": "mi_analysis.training.config",
    "mi_analysis.recipes": "mi_analysis.training.recipes",
    "mi_analysis.distributed": "mi_analysis.training.distributed",
    "mi_analysis.plots": "mi_analysis.analysis.plots",
    "mi_analysis.memory": "mi_analysis.profiling.memory",
    "mi_analysis.profile": "mi_analysis.profiling.costs",
    "mi_analysis.training.io": "mi_analysis._util.files",
    "mi_analysis.training.losses": "mi_analysis.models.losses",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path to the module at its new place (the same object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """The module was executed when it was imported under its new name."""


def install() -> None:
    if not any(isinstance(finder, _MovedModule) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModule())
