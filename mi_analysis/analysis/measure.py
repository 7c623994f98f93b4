"""The quantities at one point, from the pooled activations of the fitting and held-out sets.

    reduced = reduce_point(fit_h, held_out_h, config.pca_dim)    # PCA fitted on the fitting set
    results = measure_point(fit_h, held_out_h, reduced, inputs, config, [("I(h;y)", "probe_linear")])
    # -> [(quantity, estimator, MIResult)]

What each I(h; x) number is (docs/information.md): for a deterministic network and a continuous
x, the Shannon I(h; x) is infinite, and on N samples any estimate of it is at most log N. So no
row claims to be "the" I(h; x):
- reconstruction_gaussian: a proxy (see reconstruction.py), reconstruction_mse: InfoPro's
  held-out reconstruction error (not in nats);
- kde_upper / kde_lower: rigorous bounds on I(T; X) for the NOISY representation
  T = reduced h + N(0, sigma^2 I), X the sample drawn uniformly from the held-out set; capped at
  log N; sigma = estimator_params kde.sigma x the RMS distance of a reduced h from its mean;
- infonce (nwj, mine): lower bounds on I(reduced h; reduced x) from a trained critic, InfoNCE
  capped at log(batch size).
For I(h; y): probe_* are lower bounds H(y) - held-out cross-entropy (<= H(y)); mixed_knn is an
estimate, biased low in high dimension.

Which y a registry method gets, which of its keywords the config sets and how they scale, come
from its registry entry (EstimatorSpec): the code here names no registry method.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from mi_analysis.capture import PCA
from mi_analysis.estimators import EstimatorSpec, MIResult, available, estimate, get

from .reconstruction import ROW_SPECS, RowSpec, reconstruction_results
from .settings import RECONSTRUCTION, AnalysisConfig


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the I(h; x) and I(h; y) estimators pair h with.

    labels: int64 (n_held_out,); target_fit, target_held_out: the inputs to reconstruct (n, D) on the
    0..1 pixel scale; reduced_x: the held-out inputs PCA-reduced (n_held_out, x_pca_dim), for critics.
    """

    labels: Tensor
    target_fit: Tensor
    target_held_out: Tensor
    reduced_x: Tensor | None


def fit_pca(fitting: Tensor, dim: int) -> PCA | None:
    """PCA of the flattened fitting activations to min(dim, rank) components; None when the
    activation has at most `dim` dims (nothing to reduce) or is constant (rank 0)."""
    fitting = fitting.flatten(1)
    m, d = fitting.shape
    dim = min(dim, m - 1)
    if d <= dim:
        return None
    try:
        return PCA(dim).fit(fitting)
    except ValueError:  # rank below dim: keep every direction that varies
        centred = (fitting - fitting.mean(0)).double()
        rank = int(torch.linalg.matrix_rank(centred))
        return PCA(rank).fit(fitting) if rank > 0 else None


def reduce_point(fit_h: Tensor, held_out_h: Tensor, dim: int) -> Tensor:
    """The held-out activations (n, <= dim) in the PCA basis of the fitting activations (float32)."""
    pca = fit_pca(fit_h, dim)
    return held_out_h.flatten(1).float() if pca is None else pca.transform(held_out_h)


def measure_point(
    fit_h: Tensor, held_out_h: Tensor, reduced: Tensor, inputs: Inputs, config: AnalysisConfig,
    wanted: list[tuple[str, str]],
) -> list[tuple[str, str, MIResult]]:  # fmt: skip
    """(quantity, estimator, result) for every (quantity, method) in `wanted`.

    fit_h, held_out_h: pooled activations (n, d); reduced: the PCA-reduced held-out activations.
    The method "reconstruction" yields two results (reconstruction_gaussian, reconstruction_mse).
    """
    out = []
    for quantity, method in wanted:
        if method == RECONSTRUCTION:
            results = reconstruction_results(
                fit_h.flatten(1), inputs.target_fit, held_out_h.flatten(1), inputs.target_held_out,
                kind=config.decoder, seed=config.seed,
            )  # fmt: skip
            out += [(quantity, name, result) for name, result in results.items()]
        elif quantity == "I(h;y)":
            out.append((quantity, method, _estimate(reduced, inputs.labels, method, config)))
        elif uses_reduced_x(method):
            out.append((quantity, method, _estimate(reduced, inputs.reduced_x, method, config)))
        else:
            # each held-out sample its own group: I(h + noise; X) with X the sample index, <= log N
            index = torch.arange(len(reduced), device=reduced.device)
            out.append((quantity, method, _estimate(reduced, index, method, config)))
    return out


def uses_reduced_x(method: str) -> bool:
    """Whether an I(h;x) method pairs h with the PCA-reduced input (its registry entry's x_pairing),
    rather than with the decoder target (reconstruction) or the sample index (KDE)."""
    return method != RECONSTRUCTION and get(method).x_pairing == "reduced_input"


def _estimate(h: Tensor, y: Tensor, method: str, config: AnalysisConfig) -> MIResult:
    return estimate(h, y, method, seed=config.seed, **method_params(method, h, config))


def method_params(method: str, h: Tensor, config: AnalysisConfig) -> dict:
    """The keyword arguments the config sets for a registry method, as its entry declares them
    (analysis_params, scaled to h where the entry says so); its defaults for every other keyword."""
    return {
        param.keyword: param.keyword_value(config.estimator_params[param.group][param.name], h)
        for param in get(method).analysis_params
    }


def row_spec(estimator: str) -> RowSpec | EstimatorSpec | None:
    """What a table row's estimator is (kind, summary, per_sample, preference): a reconstruction row
    or a registry entry; None for a name neither knows (e.g. registered by another program)."""
    if estimator in ROW_SPECS:
        return ROW_SPECS[estimator]
    return get(estimator) if estimator in available() else None


def preference_rank(quantity: str, estimator: str) -> float:
    """The rank of an estimator's rows when one is picked per quantity (lower first; inf: unranked)."""
    spec = row_spec(estimator)
    return spec.preference.get(quantity, math.inf) if spec is not None else math.inf
