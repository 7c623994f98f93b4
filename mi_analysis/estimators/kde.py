"""Kolchinsky-Tracey pairwise-distance bounds on I(T; Y) for the noisy representation T = h + N(0, sigma^2 I).

Kolchinsky & Tracey (2017), "Estimating mixture entropy with pairwise distances", Entropy 19;
used by Saxe et al. (2018) for information planes. Model: X is drawn uniformly from the n
samples, h = x[X] (n, d) is the deterministic representation of sample X, and T = h + noise.
T is then a mixture of n Gaussians N(h_i, sigma^2 I) with weights 1/n, and for a mixture
    H_D(T) = H(component) - 1/n sum_i log(1/n sum_j exp(-D(p_i || p_j)))
is an upper bound on H(T) with D = KL (||h_i - h_j||^2 / (2 sigma^2)) and a lower bound with
D = Bhattacharyya (||h_i - h_j||^2 / (8 sigma^2)).

Y groups the samples: integer labels give the label-conditional I(T; Y); a continuous y groups by
identical rows, so distinct inputs give I(T; X) with X the sample index. With groups c of sizes n_c,
I(T; Y) = H(T) - sum_c (n_c/n) H(T | Y=c), each term a mixture entropy, and
    upper = H_KL(T) - sum_c p_c H_BD(T | c),   lower = H_BD(T) - sum_c p_c H_KL(T | c)
are rigorous bounds for this noisy model (the component entropies cancel). Since
0 <= I(T; Y) <= H(Y), the upper bound is capped at H(Y) (the entropy of the groups) and the lower
bound clipped at 0; both can only get tighter. Limits: sigma -> 0
gives log(number of distinct groups) for both when the h_i are distinct (log n for I(T; X));
sigma -> infinity gives 0. Values are about the empirical noisy model, in units where sigma is
measured in the units of x (no standardisation: the noise scale is part of the model).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .binning import plugin_entropy
from .interface import AnalysisParam, MIResult
from .knn import tile_rows
from .registry import register
from .uncertainty import subsample_result


def group_codes(y: torch.Tensor) -> torch.Tensor:
    """int64 group index (n,) for labels (n,) or for the distinct rows of a continuous y (n, dy)."""
    return torch.unique(y, dim=0, return_inverse=True)[1].reshape(-1)


def pairwise_mi_bound(
    h: torch.Tensor, codes: torch.Tensor, sigma: float, bound: str, tile_elements: int | None = None
) -> float:
    """Upper ("upper") or lower ("lower") bound in nats on I(h + N(0, sigma^2 I); groups)."""
    return float(pairwise_terms(h, codes, sigma, bound, tile_elements).mean())


def pairwise_terms(
    h: torch.Tensor, codes: torch.Tensor, sigma: float, bound: str, tile_elements: int | None = None
) -> torch.Tensor:
    """Per-sample terms (n,) float64 of pairwise_mi_bound, before clipping: sample i's share of the mixture
    entropy of all samples minus that of its group; their mean is the bound."""
    h = h.to(torch.float64)
    n, device = h.shape[0], h.device
    kl, bd = 1.0 / (2 * sigma**2), 1.0 / (8 * sigma**2)  # divergence per unit squared distance
    scale_all, scale_group = (kl, bd) if bound == "upper" else (bd, kl)
    _, codes, group_sizes = torch.unique(codes, return_inverse=True, return_counts=True)  # codes 0..G-1
    sq_norms = (h * h).sum(dim=1)  # (n,)
    rows = tile_rows(n, device, tile_elements)
    terms = torch.empty(n, dtype=torch.float64, device=device)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # squared distances (m, n), exact zero to self
        sq = (sq_norms[start:stop, None] + sq_norms[None, :] - 2.0 * h[start:stop] @ h.T).clamp_(min=0.0)
        sq[:, start:stop].diagonal().zero_()
        h_all = -(torch.logsumexp(-scale_all * sq, dim=1) - math.log(n))  # (m,) per-sample term of H(T) - H(comp)
        other = codes[start:stop, None] != codes[None, :]
        within = torch.logsumexp((-scale_group * sq).masked_fill_(other, -math.inf), dim=1)
        h_group = -(within - torch.log(group_sizes[codes[start:stop]].to(torch.float64)))
        terms[start:stop] = h_all - h_group
    return terms


def _kde(x: torch.Tensor, y: torch.Tensor, *, bound: str, sigma: float, tile_elements: int | None,
         num_subsets: int, seed: int) -> MIResult:
    if not (isinstance(sigma, (int, float)) and sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number (noise std in units of x), got {sigma!r}")
    codes = group_codes(y)
    terms = pairwise_terms(x, codes, sigma, bound, tile_elements)

    def value_of(rows: torch.Tensor | None) -> float:
        if rows is None:
            value = float(terms.mean())
        else:
            rows = rows.to(x.device)
            value = pairwise_mi_bound(x[rows], codes[rows], sigma, bound, tile_elements)
        # 0 <= I(T; Y) <= H(Y): clipping to that range keeps a bound a bound and can only tighten it
        if bound == "lower":
            return max(0.0, value)
        return min(value, plugin_entropy(codes if rows is None else codes[rows]))

    kind = "upper_bound" if bound == "upper" else "lower_bound"
    params = {"sigma": sigma, "groups": int(codes.max()) + 1, "seed": seed}
    result = subsample_result(value_of, x.shape[0], kind=kind, method=f"kde_{bound}", params=params, seed=seed,
                              num_subsets=num_subsets)
    # a clipped value is not the mean of the terms: no terms then (nothing to pair)
    unclipped = result.value == float(terms.mean())
    return dataclasses.replace(result, terms=terms.cpu() if unclipped else None)


KDE_SIGMA = AnalysisParam(
    "kde", "sigma", "sigma", 0.5, "noise std per dimension, relative to the RMS distance of h from its mean",
    value_type="number", scale="rms_spread",
)  # relative: the bound does not change when a layer is rescaled, and the noise is comparable to the
# distances between samples in any dimension

_DESCRIPTION = (
    "Kolchinsky-Tracey pairwise-distance {side} bound on I(T;Y) for the noisy model T = x + N(0, sigma^2 I) with x "
    "drawn uniformly from the samples ({pair}). y labels: label-conditional I(T;Y); continuous y: groups of identical "
    "rows, i.e. I(T;X) with X the sample index (at most log n). A bound for that noisy empirical model, which depends "
    "on sigma (units of x); not the MI of the deterministic network. stderr/CI by disjoint subsampling."
)


@register("kde_upper", kind="upper_bound", y_type="any",
          description=_DESCRIPTION.format(side="upper", pair="KL for H(T), Bhattacharyya for H(T|Y); capped at H(Y)"),
          summary="an upper bound for h + Gaussian noise (Kolchinsky-Tracey), capped at H(y) (log N: sample index)",
          per_sample=True, analysis_params=(KDE_SIGMA,), x_pairing="sample_index", preference={"I(h;x)": 1})
def kde_upper(x: torch.Tensor, y: torch.Tensor, *, sigma: float = 0.1, tile_elements: int | None = None,
              num_subsets: int = 10, seed: int = 0) -> MIResult:
    """sigma: std of the added Gaussian noise, in the units of x (a modelling choice, state it)."""
    return _kde(x, y, bound="upper", sigma=sigma, tile_elements=tile_elements, num_subsets=num_subsets, seed=seed)


@register("kde_lower", kind="lower_bound", y_type="any",
          description=_DESCRIPTION.format(side="lower", pair="Bhattacharyya for H(T), KL for H(T|Y); clipped at 0"),
          summary="a lower bound for h + Gaussian noise (Kolchinsky-Tracey), clipped at 0",
          per_sample=True, analysis_params=(KDE_SIGMA,), x_pairing="sample_index")
def kde_lower(x: torch.Tensor, y: torch.Tensor, *, sigma: float = 0.1, tile_elements: int | None = None,
              num_subsets: int = 10, seed: int = 0) -> MIResult:
    """sigma: std of the added Gaussian noise, in the units of x (a modelling choice, state it)."""
    return _kde(x, y, bound="lower", sigma=sigma, tile_elements=tile_elements, num_subsets=num_subsets, seed=seed)
