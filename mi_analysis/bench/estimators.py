"""`mi-analysis bench estimators [options]`: the estimator benchmark on known answers.

The suite lives in the checkout, benchmarks/bench_estimators.py (it reads task files that are not
part of the package); every option is passed to its `main(argv)`, see benchmarks/README.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Sequence

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_estimators.py"


def main(argv: Sequence[str] | None = None) -> int:
    if not SCRIPT.is_file():
        raise FileNotFoundError(f"the estimator benchmark {SCRIPT} is not there: it ships with a checkout "
                                f"of the repository, not with an installed package")
    spec = importlib.util.spec_from_file_location("bench_estimators", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.main(list(argv or []))
