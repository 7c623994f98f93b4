"""One analysis pass of one model: capture every point once, then run the estimators point by point.

The fitting set (PCA bases, decoders) and the held-out set (every reported number) are disjoint;
both are captured in one forward pass each for all points, pooled inside the hooks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor, nn

from mi_analysis._util.threads import AUTO as AUTO_THREADS
from mi_analysis.capture import Tokens, capture
from mi_analysis.models import Tap

from .measure import Inputs, fit_pca, measure_point, reduce_point, uses_reduced_x
from .settings import RECONSTRUCTION, RECONSTRUCTION_ROWS, AnalysisConfig


@dataclasses.dataclass(frozen=True)
class SampleSets:
    """Model inputs of the fitting and held-out sets, the held-out labels, and the inputs to reconstruct.

    fit_x, held_out_x: what the model takes (e.g. normalised images); labels: int64 (n_held_out,);
    target_fit, target_held_out: (n, D) float, e.g. pixels on the 0..1 scale.
    held_out_ids: int64 (n_held_out,) ids of the held-out samples in their source (e.g. indices in the
    test set), which per-sample terms are stored with; sample_set: a short hash of them (samples.py).
    """

    fit_x: Tensor
    held_out_x: Tensor
    labels: Tensor
    target_fit: Tensor
    target_held_out: Tensor
    held_out_ids: Tensor
    sample_set: str

    def __post_init__(self) -> None:
        n_fit, n_held_out = len(self.fit_x), len(self.held_out_x)
        if (len(self.target_fit) != n_fit or len(self.labels) != n_held_out or len(self.target_held_out) != n_held_out
                or len(self.held_out_ids) != n_held_out):
            raise ValueError(
                f"sample sets disagree in length: fit_x {n_fit}, target_fit {len(self.target_fit)}, held_out_x {n_held_out}, "
                f"labels {len(self.labels)}, target_held_out {len(self.target_held_out)}, "
                f"held_out_ids {len(self.held_out_ids)}"
            )
        if n_fit < 2:
            raise ValueError(f"the fitting set needs at least 2 samples, got {n_fit}")


def wanted_methods(config: AnalysisConfig) -> list[tuple[str, str]]:
    """(quantity, method) pairs the config asks for, in table order."""
    methods = {"I(h;y)": config.y_estimators, "I(h;x)": config.x_estimators}
    return [(q, m) for q in config.quantities for m in methods[q]]


def row_estimators(method: str) -> tuple[str, ...]:
    """The estimator names of the rows a method writes."""
    return RECONSTRUCTION_ROWS if method == RECONSTRUCTION else (method,)


def measure_model(
    model: nn.Module,
    points: list[Tap],
    data: SampleSets,
    config: AnalysisConfig,
    base_row: dict[str, Any],
    device: torch.device,
    *,
    done: Callable[[tuple[str, ...]], bool] = lambda key: False,
    emit: Callable[[list[dict[str, Any]]], None] = lambda rows: None,
    emit_terms: Callable[[str, dict[tuple[str, str], Tensor]], None] = lambda point, terms: None,
) -> list[dict[str, Any]]:
    """Rows for every point and wanted (quantity, method) not yet `done`; `emit` gets each point's rows
    as soon as they exist (so a table grows point by point). base_row holds run, mode, K, seed, epoch.
    emit_terms(point, {(quantity, estimator): per-sample terms (n_held_out,)}) is called before `emit`
    with the terms of the point's new rows whose estimators have them (MIResult.terms).

    A point whose activations equal those of an earlier point on both sets (the input "m{k}.in" of
    plain GLL, R0, is the detached output of module k-1) reuses that point's results: the estimators
    are deterministic given their inputs and seed, so the rows are what recomputing would give.
    """
    if data.held_out_x.dim() >= 3 and config.pool > max(data.held_out_x.shape[2:]):
        raise ValueError(f"pool={config.pool} is larger than the inputs' {'x'.join(map(str, data.held_out_x.shape[2:]))} "
                         "map, so larger than every activation map (pooling never upsamples); choose pool <= "
                         f"{max(data.held_out_x.shape[2:])}")
    todo: dict[str, list[tuple[str, str]]] = {}
    for point in points:
        missing = [
            (quantity, method) for quantity, method in wanted_methods(config)
            if not all(done(key_of(base_row, point.name, quantity, name)) for name in row_estimators(method))
        ]  # fmt: skip
        if missing:
            todo[point.name] = missing
    if not todo:
        return []
    names = list(todo)
    token_steps = {point.name: _token_step(config) for point in points if point.name in todo and point.tokens}
    pool = {name: [token_steps[name]] if name in token_steps else ("avgpool", config.pool) for name in names}
    fit = _capture(model, data.fit_x, names, pool, config, device, "fitting")
    held_out = _capture(model, data.held_out_x, names, pool, config, device, "held-out")
    needs_x = any(quantity == "I(h;x)" and uses_reduced_x(method) for quantity, method in wanted_methods(config))
    inputs = _inputs(data, config, device, needs_x)
    rows: list[dict[str, Any]] = []
    measured: list[tuple[Tensor, Tensor, dict]] = []  # (fit_h, held_out_h, (quantity, method) -> results)
    for point in points:
        if point.name not in todo:
            continue
        fit_h, held_out_h = fit.pop(point.name), held_out.pop(point.name)
        results = next((known for f, p, known in measured if _same(f, fit_h) and _same(p, held_out_h)), None)
        if results is None:
            results = {}
            measured.append((fit_h, held_out_h, results))
        missing = [pair for pair in todo[point.name] if pair not in results]
        if missing:
            fit_d, held_out_d = fit_h.to(device), held_out_h.to(device)
            reduced = reduce_point(fit_d, held_out_d, config.pca_dim)
            for pair in missing:
                results[pair] = measure_point(fit_d, held_out_d, reduced, inputs, config, [pair])
        fresh = [
            (quantity, estimator, result)
            for pair in todo[point.name] for quantity, estimator, result in results[pair]
            if not done(key_of(base_row, point.name, quantity, estimator))
        ]  # fmt: skip
        emit_terms(point.name, {(q, e): r.terms for q, e, r in fresh if r.terms is not None})
        reduced_by = [token_steps[point.name].describe(point.shape)] if point.name in token_steps else []
        point_rows = [_row(base_row, point, quantity, estimator, result, data.sample_set, reduced_by)
                      for quantity, estimator, result in fresh]
        emit(point_rows)
        rows += point_rows
    return rows


def _token_step(config: AnalysisConfig) -> Tokens:
    """The reduction of token activations (T, C) that config.tokens names (AnalysisConfig)."""
    return Tokens("pool", config.pool * config.pool) if config.tokens == "pool" else Tokens(config.tokens)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def _capture(model: nn.Module, x: Tensor, names: list[str], pool, config: AnalysisConfig, device: torch.device,
             which: str) -> dict[str, Tensor]:  # fmt: skip
    try:
        # the estimators' policy (estimate's default): the free cores, at most what `analyze --threads` set
        return dict(capture(model, x, names, pool, batch_size=config.batch_size, device=device,
                            threads=AUTO_THREADS))
    except RuntimeError as err:
        raise ValueError(
            f"the model's forward pass failed on the {which} set (inputs of shape {tuple(x.shape)}, "
            f"dtype {x.dtype}): {err}"
        ) from err


def _inputs(data: SampleSets, config: AnalysisConfig, device: torch.device, needs_x: bool) -> Inputs:
    target_fit = data.target_fit.flatten(1).float().to(device)
    target_held_out = data.target_held_out.flatten(1).float().to(device)
    reduced_x = None
    if needs_x:
        pca = fit_pca(target_fit, config.x_pca_dim)
        reduced_x = target_held_out if pca is None else pca.transform(target_held_out)
    return Inputs(data.labels.to(device), target_fit, target_held_out, reduced_x)


def key_of(base_row: dict[str, Any], point: str, quantity: str, estimator: str) -> tuple[str, ...]:
    """The table key (run, epoch, point, quantity, estimator) as text, like table.row_key."""
    return (str(base_row["run"]), str(base_row["epoch"]), point, quantity, estimator)


def requested_keys(base_row: dict[str, Any], points: list[Tap], config: AnalysisConfig) -> set[tuple[str, ...]]:
    """Keys of every row the config asks for at these points."""
    return {
        key_of(base_row, point.name, quantity, name)
        for point in points for quantity, method in wanted_methods(config) for name in row_estimators(method)
    }  # fmt: skip


def _row(base_row: dict[str, Any], point: Tap, quantity: str, estimator: str, result, sample_set: str,
         reduced_by: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        **base_row, "point": point.name, "depth": point.depth, "module": point.module, "quantity": quantity,
        "estimator": estimator, "kind": result.kind, "value": float(result.value),
        "ci_low": float(result.ci[0]), "ci_high": float(result.ci[1]), "n": int(result.n),
        "sample_set": sample_set, "notes": "; ".join([*reduced_by, *result.notes]),
    }  # fmt: skip
