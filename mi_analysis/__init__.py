"""mi_analysis: train networks end-to-end, by greedy local learning and with context supply,
and measure how much information each layer keeps about the input and the label.

    from mi_analysis import build, train, analyze_run, estimate
"""

from mi_analysis._util import moved
from mi_analysis._util.version import __version__
from mi_analysis.analysis import AnalysisConfig, analyze_model, analyze_run, collect_runs, compare, plots
from mi_analysis.capture import capture
from mi_analysis.estimators import MIResult, estimate
from mi_analysis.models import LocalNet, ModelConfig, build
from mi_analysis.training import DataConfig, RunConfig, TrainConfig, load_run, train

moved.install()

__all__ = [
    "AnalysisConfig",
    "DataConfig",
    "LocalNet",
    "MIResult",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "analyze_model",
    "analyze_run",
    "build",
    "capture",
    "collect_runs",
    "compare",
    "estimate",
    "load_run",
    "plots",
    "train",
]
