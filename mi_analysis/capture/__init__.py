"""Capture: record activations at named points of a network, reduced on the fly.

    acts = capture(net, loader, reduce=("avgpool", 4))
"""

from .recorder import Captured, capture, fit_reducers, gather
from .reductions import (
    PCA, REDUCTION_STEPS, TOKEN_REDUCTIONS, AvgPool, RandomProjection, Reduction, Tokens, make_reduction,
)
from .taps import UnknownPointError, resolve_taps

__all__ = [
    "capture",
    "fit_reducers",
    "gather",
    "Captured",
    "Reduction",
    "AvgPool",
    "RandomProjection",
    "PCA",
    "Tokens",
    "TOKEN_REDUCTIONS",
    "make_reduction",
    "REDUCTION_STEPS",
    "UnknownPointError",
    "resolve_taps",
]
