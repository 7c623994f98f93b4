"""mi_analysis: train networks end-to-end, by greedy local learning and with context supply,
and measure how much information each layer keeps about the input and the label.

    from mi_analysis import build, train, analyze_run, estimate
"""

__version__ = "0.1.0"

from mi_analysis.analysis import AnalysisConfig, analyze_model, analyze_run, collect_runs
from mi_analysis.capture import capture
from mi_analysis.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mi_analysis.estimators import MIResult, estimate
from mi_analysis.models import LocalNet, build
from mi_analysis.training import load_run, train

__all__ = [
    "AnalysisConfig",
    "DataConfig",
    "LocalNet",
    "MIResult",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "analyze_model",
    "analyze_run",
    "build",
    "capture",
    "collect_runs",
    "estimate",
    "load_run",
    "train",
]
