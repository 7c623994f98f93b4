"""AnalysisConfig: what to measure and how, as a frozen, YAML-friendly dataclass.

Two kinds of fields:
- selection (points, quantities, y_estimators, x_estimators, device, batch_size): which rows to
  compute and where; they never change a row's value, so tables may grow under other selections;
- settings (every other field): they determine the values. One mi.csv holds rows of one set of
  settings only; they are stored next to it (analysis.yaml) and checked on every append.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from pathlib import Path
from typing import Any

import yaml

from mi_analysis._util.checks import is_number, positive_int
from mi_analysis._util.config import from_dict, to_plain
from mi_analysis.estimators import available, get

QUANTITIES = ("I(h;x)", "I(h;y)")
QUANTITY_ALIASES = {"x": "I(h;x)", "y": "I(h;y)", "I(h;x)": "I(h;x)", "I(h;y)": "I(h;y)"}
POINT_SETS = ("boundaries", "all")
DECODERS = ("linear", "mlp")
# An I(h;x) method of this package, not of the estimator registry: it yields two rows.
RECONSTRUCTION = "reconstruction"
RECONSTRUCTION_ROWS = ("reconstruction_gaussian", "reconstruction_mse")
RENAMED_KEYS = {"probe_size": "held_out_size"}  # old key -> new key of analysis.yaml and AnalysisConfig
SELECTION_FIELDS = frozenset({"points", "quantities", "y_estimators", "x_estimators", "device", "batch_size"})


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Settings of a per-layer information analysis (units: nats; sizes in samples).

    Selection:
      points: "boundaries" (the output of the last unit of every module and every module input
          "m{k}.in"; for an E2E run, K=1, every unit output), "all" (every tap), or names.
      quantities: subset of ("I(h;x)", "I(h;y)").
      y_estimators: registry methods for I(h;y) with class labels (see estimators.available()).
      x_estimators: "reconstruction" (decoder; rows reconstruction_gaussian [proxy] and
          reconstruction_mse [non_shannon]) and/or registry methods that take a continuous y:
          kde_upper / kde_lower (y = the input itself, i.e. I(h + noise; sample)), infonce, nwj,
          ... (y = the input reduced by PCA to x_pca_dim).
      device: where the model and the estimators run ("auto": cuda when available).
      batch_size: samples per forward pass of the capture.
    Settings:
      held_out_size: samples of the held-out set (the run's test split), drawn with `seed`; None = all.
      fit_size: samples of the fitting set (the run's training split) on which the PCA of each
          point and the decoders are fitted (at most the split's size); None = all.
      seed: draws of the held-out and fitting sets, estimator seeds.
      pool: adaptive average pooling of the spatial dims to pool x pool, in the capture hooks.
      pca_dim: PCA of the pooled h (fitted on the fitting set) to at most this many dims.
      probe_folds, probe_weight_decays: cross-fitting folds and L2 grid of the probe classifier
          (L2 per sample-mean cross-entropy on standardised h; every choice gives a valid bound, a
          grid such as (1e-2, 1e-3, 1e-4) tightens it a little at about 2.5 times the cost).
      knn_k: neighbours of the k-NN estimators.
      kde_sigma: noise std of the KDE bounds per dimension, relative to the RMS distance of a
          reduced h from its mean, sqrt(sum_j var_j) (so the bound does not change when a layer is
          rescaled, and the noise is comparable to the distances between samples in any dimension).
      infonce_batch_size, infonce_epochs: critic batch (the bound is capped at its log) and epochs.
      x_pca_dim: PCA dims of the input for the critic-based I(h;x) bounds.
      decoder: "linear" (ridge, closed form) or "mlp" (one hidden layer) from the pooled h to
          the un-normalised input.
    """

    points: str | tuple[str, ...] = "boundaries"
    quantities: tuple[str, ...] = QUANTITIES
    y_estimators: tuple[str, ...] = ("probe_linear", "mixed_knn")
    x_estimators: tuple[str, ...] = (RECONSTRUCTION, "kde_upper")
    device: str = "auto"
    batch_size: int = 256
    held_out_size: int | None = None
    fit_size: int | None = 2000
    seed: int = 0
    pool: int = 4
    pca_dim: int = 64
    probe_folds: int = 3
    probe_weight_decays: tuple[float, ...] = (1e-3,)
    knn_k: int = 3
    kde_sigma: float = 0.5
    infonce_batch_size: int = 128
    infonce_epochs: int = 30
    x_pca_dim: int = 64
    decoder: str = "linear"

    def __post_init__(self) -> None:
        _check_points(self.points)
        quantities = tuple(QUANTITY_ALIASES.get(q, q) for q in self.quantities)
        if not quantities or any(q not in QUANTITIES for q in quantities) or len(set(quantities)) != len(quantities):
            raise ValueError(
                f"quantities must be distinct names from {QUANTITIES} (or 'x', 'y'), got {self.quantities!r}"
            )
        object.__setattr__(self, "quantities", quantities)
        _check_methods("y_estimators", self.y_estimators, ("labels", "any"), ())
        _check_methods("x_estimators", self.x_estimators, ("continuous", "any"), (RECONSTRUCTION,))
        for name in ("batch_size", "pool", "pca_dim", "probe_folds", "knn_k", "infonce_batch_size",
                     "infonce_epochs", "x_pca_dim"):
            positive_int(getattr(self, name), name)
        for name in ("held_out_size", "fit_size"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.probe_folds < 2:
            raise ValueError(f"probe_folds must be >= 2 (each part is held out once), got {self.probe_folds}")
        if not self.probe_weight_decays or not all(is_number(w) and w > 0 for w in self.probe_weight_decays):
            raise ValueError(f"probe_weight_decays must be positive numbers, got {self.probe_weight_decays!r}")
        if not (is_number(self.kde_sigma) and 0 < self.kde_sigma < math.inf):
            raise ValueError(f"kde_sigma must be a positive number, got {self.kde_sigma!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a str such as 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def replace(self, **changes: Any) -> AnalysisConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        return from_dict(cls, current_settings(data, "analysis config"), "analysis config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> AnalysisConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(data)

    def settings(self) -> dict[str, Any]:
        """The fields that determine the values of the rows (all but the selection fields)."""
        return {k: v for k, v in self.to_dict().items() if k not in SELECTION_FIELDS}


def _accept_renamed_keywords(init):
    """AnalysisConfig(old_name=...) for every RENAMED_KEYS entry: warns, then sets the new field."""

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **current_settings(kwargs, "AnalysisConfig"))

    return __init__


def _renamed_property(old: str, new: str) -> property:
    def get(self: AnalysisConfig) -> Any:
        warnings.warn(f"AnalysisConfig.{old} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of {new}.")


AnalysisConfig.__init__ = _accept_renamed_keywords(AnalysisConfig.__init__)
for _old, _new in RENAMED_KEYS.items():
    setattr(AnalysisConfig, _old, _renamed_property(_old, _new))


def current_settings(data: Any, where: str) -> Any:
    """Settings as written by any version of the package, in today's form: keys renamed since then
    (RENAMED_KEYS) take their new name, with a DeprecationWarning; the table's format_version is dropped."""
    if not isinstance(data, dict):
        return data
    data = {key: value for key, value in data.items() if key != "format_version"}
    for old, new in RENAMED_KEYS.items():
        if old in data:
            warnings.warn(f"{where}: the key {old!r} is now called {new!r}", DeprecationWarning, stacklevel=3)
            if new in data and data[new] != data[old]:
                raise ValueError(f"{where} has both {old!r} and its new name {new!r}, with different values")
            data[new] = data.pop(old)
    return data


def _check_points(points: Any) -> None:
    if isinstance(points, str):
        return  # a set name or a single point name; names are checked against the model
    if not isinstance(points, tuple) or not points or not all(isinstance(p, str) for p in points):
        raise ValueError(
            f"points must be {POINT_SETS[0]!r}, {POINT_SETS[1]!r} or a tuple of point names, got {points!r}"
        )


def _check_methods(field: str, methods: Any, y_types: tuple[str, ...], own: tuple[str, ...]) -> None:
    if not isinstance(methods, tuple) or len(set(methods)) != len(methods):
        raise ValueError(f"{field} must be a tuple of distinct method names, got {methods!r}")
    valid = [*own, *(m for m in available() if get(m).y_type in y_types)]
    unknown = [m for m in methods if m not in valid]
    if unknown:
        raise ValueError(f"{field} has unknown or unsuitable method(s) {unknown}; valid: {valid}")
