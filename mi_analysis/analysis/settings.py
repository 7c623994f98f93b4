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
import warnings
from pathlib import Path
from typing import Any, Mapping

import yaml

from mi_analysis._util.checks import positive_int
from mi_analysis._util.config import from_dict, to_plain
from mi_analysis.capture import TOKEN_REDUCTIONS
from mi_analysis.estimators import available, get
from mi_analysis.estimators.registry import analysis_settings

from .reconstruction import ROW_SPECS

QUANTITIES = ("I(h;x)", "I(h;y)")
QUANTITY_ALIASES = {"x": "I(h;x)", "y": "I(h;y)", "I(h;x)": "I(h;x)", "I(h;y)": "I(h;y)"}
POINT_SETS = ("boundaries", "all")
DECODERS = ("linear", "mlp")
# An I(h;x) method of this package, not of the estimator registry: it yields two rows.
RECONSTRUCTION = "reconstruction"
RECONSTRUCTION_ROWS = tuple(ROW_SPECS)
SELECTION_FIELDS = frozenset({"points", "quantities", "y_estimators", "x_estimators", "device", "batch_size"})
# Keys of earlier releases, in AnalysisConfig keywords, attributes and analysis.yaml files, with a
# DeprecationWarning: renamed fields (old -> new), and flat estimator keys -> estimator_params (group, name).
RENAMED_KEYS = {"probe_size": "held_out_size"}
LEGACY_KEYS = {
    "probe_folds": ("probe", "folds"),
    "probe_weight_decays": ("probe", "weight_decays"),
    "knn_k": ("knn", "k"),
    "kde_sigma": ("kde", "sigma"),
    "infonce_batch_size": ("critic", "batch_size"),
    "infonce_epochs": ("critic", "max_epochs"),
}


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Settings of a per-layer information analysis (units: nats; sizes in samples).

    Selection:
      points: "boundaries" (the output of the last unit of every module and every module input
          "m{k}.in"; for an E2E run, K=1, every unit output), "all" (every tap), or tap names.
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
      estimator_params: {group: {name: value}}, the settings the registered estimators declare
          (EstimatorSpec.analysis_params; their defaults, meaning and scaling are declared there,
          see estimators.registry.analysis_settings()), e.g. {"probe": {"folds": 3},
          "knn": {"k": 3}, "kde": {"sigma": 0.5}, "critic": {"batch_size": 128}}. Groups and names
          left out keep their defaults. The flat keys of earlier releases (LEGACY_KEYS: knn_k,
          kde_sigma, probe_folds, ...) still work, as keywords and in analysis.yaml, with a
          DeprecationWarning.
      x_pca_dim: PCA dims of the input for the estimators that pair h with the reduced input.
      decoder: "linear" (ridge, closed form) or "mlp" (one hidden layer) from the pooled h to
          the un-normalised input.
      tokens: how token activations (T, C) (the taps a LocalNet declares with such a shape, e.g.
          a ViT's blocks) are reduced in the capture hooks, before the PCA to pca_dim: "pool"
          (consecutive tokens averaged down to pool * pool tokens, as many positions as an image
          map pooled to pool x pool keeps, then flattened), "mean" (the mean token), "cls" (the
          first token) or "flatten" (every token). The rows' notes say what was kept.
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
    estimator_params: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    x_pca_dim: int = 64
    decoder: str = "linear"
    tokens: str = "pool"

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
        object.__setattr__(self, "estimator_params", _resolve_params(self.estimator_params))
        for name in ("batch_size", "pool", "pca_dim", "x_pca_dim"):
            positive_int(getattr(self, name), name)
        for name in ("held_out_size", "fit_size"):
            if getattr(self, name) is not None:
                positive_int(getattr(self, name), name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.tokens not in TOKEN_REDUCTIONS:
            raise ValueError(f"tokens must be one of {TOKEN_REDUCTIONS}, got {self.tokens!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a str such as 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def __getattr__(self, name: str) -> Any:  # only for names that are not fields
        if name in RENAMED_KEYS:
            warnings.warn(f"AnalysisConfig.{name} is deprecated; use {RENAMED_KEYS[name]}", DeprecationWarning,
                          stacklevel=2)
            return getattr(self, RENAMED_KEYS[name])
        if name in LEGACY_KEYS:
            group, key = LEGACY_KEYS[name]
            warnings.warn(f"AnalysisConfig.{name} is deprecated: use estimator_params[{group!r}][{key!r}]",
                          DeprecationWarning, stacklevel=2)
            return self.estimator_params[group][key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes: Any) -> AnalysisConfig:
        """A copy with `changes`; estimator_params given here are merged into the current ones."""
        changes = current_settings(changes)
        if "estimator_params" in changes:
            changes["estimator_params"] = _merge(self.estimator_params, changes["estimator_params"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        if not isinstance(data, dict):
            return from_dict(cls, data, "analysis config")  # the error for a non-mapping
        data = current_settings(dict(data))
        params = data.pop("estimator_params", {})
        return from_dict(cls, data, "analysis config").replace(estimator_params=params)

    @classmethod
    def from_yaml(cls, path: str | Path) -> AnalysisConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(data)

    def settings(self) -> dict[str, Any]:
        """The fields that determine the values of the rows (all but the selection fields)."""
        return {k: v for k, v in self.to_dict().items() if k not in SELECTION_FIELDS}


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


def _resolve_params(given: Any) -> dict[str, dict[str, Any]]:
    """Every declared estimator setting: the given value (checked by its AnalysisParam) or its default."""
    declared = analysis_settings()
    if not isinstance(given, Mapping) or not all(isinstance(v, Mapping) for v in given.values()):
        raise ValueError(f"estimator_params must map groups to {{name: value}} mappings, got {given!r}")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"estimator_params has unknown group(s) {unknown}; valid: {sorted(declared)}")
    for group, values in given.items():
        extra = sorted(set(values) - set(declared[group]))
        if extra:
            valid = sorted(declared[group])
            raise ValueError(f"estimator_params[{group!r}] has unknown name(s) {extra}; valid: {valid}")
    try:
        return {
            group: {name: param.check(given.get(group, {}).get(name, param.default)) for name, param in params.items()}
            for group, params in declared.items()
        }  # fmt: skip
    except ValueError as err:  # "knn.k must be ..." -> "estimator_params.knn.k must be ..."
        raise ValueError(f"estimator_params.{err}") from None


def _merge(base: Mapping[str, Mapping[str, Any]], changes: Any) -> Any:
    if not isinstance(changes, Mapping) or not all(isinstance(v, Mapping) for v in changes.values()):
        return changes  # _resolve_params names the error
    return {**base, **{group: {**base.get(group, {}), **values} for group, values in changes.items()}}


def current_settings(values: dict[str, Any]) -> dict[str, Any]:
    """`values` (keywords or a stored analysis.yaml) in today's form: keys of earlier releases renamed
    (RENAMED_KEYS) or moved into estimator_params (LEGACY_KEYS), each with a DeprecationWarning; a
    table's format_version is not a setting and is dropped (MiTable checks it)."""
    values = {key: value for key, value in values.items() if key != "format_version"}
    for old, new in RENAMED_KEYS.items():
        if old in values:
            warnings.warn(f"AnalysisConfig: the key {old!r} is now called {new!r}", DeprecationWarning, stacklevel=3)
            if new in values and values[new] != values[old]:
                raise ValueError(f"AnalysisConfig got both {old!r} and its new name {new!r}, with different values")
            values[new] = values.pop(old)
    legacy = [key for key in values if key in LEGACY_KEYS]
    if not legacy:
        return values
    moves = ", ".join(f"{key} -> estimator_params.{'.'.join(LEGACY_KEYS[key])}" for key in legacy)
    warnings.warn(f"AnalysisConfig keys {legacy} are deprecated ({moves})", DeprecationWarning, stacklevel=3)
    params = {group: dict(v) for group, v in values.pop("estimator_params", {}).items()}
    for key in legacy:
        group, name = LEGACY_KEYS[key]
        params.setdefault(group, {})[name] = values.pop(key)
    return {**values, "estimator_params": params}


# Keywords of earlier releases (AnalysisConfig(knn_k=5)) keep working: the generated __init__ gets them folded.
_dataclass_init = AnalysisConfig.__init__


@functools.wraps(_dataclass_init)
def _init(self: AnalysisConfig, *args: Any, **kwargs: Any) -> None:
    _dataclass_init(self, *args, **current_settings(kwargs))


AnalysisConfig.__init__ = _init  # type: ignore[method-assign]
