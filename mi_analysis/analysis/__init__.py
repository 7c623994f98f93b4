"""Per-layer information analysis: I(h;x) and I(h;y) at the taps of a network -> mi.csv.

    from mi_analysis.analysis import AnalysisConfig, analyze_run, analyze_model, collect_runs
    rows = analyze_run("runs/cifar10-resnet32-K16-R0-...", AnalysisConfig(held_out_size=5000))
    rows = analyze_model(torchvision_resnet18, (x, y), ["layer1", "layer2", "layer3", "layer4"])
    rows = compare(["runs/demo/mi.csv"], out="comparisons.csv")   # paired differences of the modes

This is the only place that joins a model, its activations and the estimators.
Every row says what its number is (kind: lower_bound, upper_bound, estimate, proxy, non_shannon),
in nats unless its estimator says otherwise (reconstruction_mse: squared input units); see
measure.py for why no I(h;x) row of a deterministic network is "the" I(h;x).
"""

from . import plots
from .comparisons import compare
from .runs import analyze_model, analyze_run, boundary_points, collect_runs, select_points, typed_row
from .settings import QUANTITIES, AnalysisConfig
from .table import MI_COLUMNS, MiTable, settings_path

__all__ = [
    "AnalysisConfig",
    "MI_COLUMNS",
    "MiTable",
    "QUANTITIES",
    "analyze_model",
    "analyze_run",
    "boundary_points",
    "collect_runs",
    "compare",
    "select_points",
    "settings_path",
    "plots",
    "typed_row",
]
