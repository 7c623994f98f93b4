"""Ross (2014) k-NN estimate of I(x; y) for continuous x (n, d) and discrete labels y (n,).

Ross, "Mutual information between discrete and continuous data sets", PLoS ONE 9 (2014).
For each sample i of class c (N_c samples in that class): d_i = max-norm distance to its k-th
nearest neighbour among the other samples of class c; m_i = #{j != i (any class): |x_i - x_j| <= d_i}
(so the k-th neighbour itself is counted). Then
    I = psi(N) - < psi(N_c) > + psi(k) - < psi(m) >.
A class with N_c <= k uses k_c = N_c - 1 for its members (averaging psi(k_c)); samples of
singleton classes have no neighbour and are left out (N counts the samples kept), with a note.

Ties in x (discrete values, ReLU zeros) are broken by seeded noise of std `jitter` (standardised
units). The noise is independent of y, so a tied group becomes a tiny cluster whose class mix is
what the counts see: at n = 2000, independent labels with 3-dim ReLU features give 0.009 nats
(exact ties left in place, jitter=0, would give -0.12: d_i = 0 counts every duplicate in m_i).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from scipy.special import digamma

from .interface import MIResult
from .diagnostics import caution, constant_note, knn_dimension_note, tie_notes
from .knn import (KNN_K, count_below, exclude_self, knn_min_subset_size, max_norm_tile, neighbor_counts, precision_notes,
                  prepare_points, smallest_k, tile_rows)
from .registry import register
from .uncertainty import subsample_result


TIE_RULE = "ties: broken by seeded noise of std `jitter` (independent of y)"


def ross_value(px: torch.Tensor, labels: torch.Tensor, ks: Sequence[int], tile_elements: int | None = None) -> float:
    """Ross estimate in nats on prepared points px (n, d) with int64 labels (n,), averaged over ks."""
    terms = ross_terms(px, labels, ks, tile_elements)
    return float(terms.mean()) if len(terms) >= 2 else 0.0


def ross_terms(px: torch.Tensor, labels: torch.Tensor, ks: Sequence[int], tile_elements: int | None = None) -> torch.Tensor:
    """Per-sample Ross terms psi(N) - psi(N_c) + psi(k_c) - psi(m_i), float64, averaged over ks, for the samples
    outside singleton classes (in their order; all n when no class is a singleton); their mean is the estimate."""
    _, codes, class_sizes = torch.unique(labels, return_inverse=True, return_counts=True)
    keep = class_sizes[codes] > 1
    if not bool(keep.all()):
        px, codes = px[keep], codes[keep]
    n, device = px.shape[0], px.device
    if n < 2:
        return torch.zeros(n, dtype=torch.float64, device=device)
    sizes = class_sizes[codes]  # N_c of each kept sample (n,)
    rows = tile_rows(n, device, tile_elements)
    px_t = px.T.contiguous()
    dist_buf, scratch, same_buf = (torch.empty(min(rows, n), n, dtype=px.dtype, device=device) for _ in range(3))
    hits = torch.empty(min(rows, n), n, dtype=torch.bool, device=device)
    k_max = max(ks)
    counts = {k: torch.empty(n, dtype=torch.int64, device=device) for k in ks}
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        m = stop - start
        dist = max_norm_tile(px[start:stop], px_t, dist_buf[:m], scratch[:m])
        exclude_self(dist, start)
        other_class = codes[start:stop, None] != codes[None, :]  # (m, n)
        same = torch.where(other_class, torch.full((), float("inf"), dtype=px.dtype, device=device), dist,
                           out=same_buf[:m])
        # k_max may exceed a small class: the extra entries are +inf and never chosen below.
        near = smallest_k(same, min(k_max, n - 1))[0]
        for k in ks:
            k_own = torch.clamp(sizes[start:stop] - 1, max=k)  # (m,)
            radius = near.gather(1, (k_own - 1)[:, None])
            counts[k][start:stop] = count_below(dist, radius, hits[:m], inclusive=True)
    psi = torch.special.digamma
    sizes64 = sizes.to(torch.float64)
    total = torch.zeros(n, dtype=torch.float64, device=device)
    for k in ks:
        k_own = torch.clamp(sizes64 - 1, max=k)
        total += digamma(n) - psi(sizes64) + psi(k_own) - psi(counts[k].to(torch.float64))
    return total / len(ks)


@register(
    "mixed_knn",
    kind="estimate",
    y_type="labels",
    description=(
        "Ross (2014) k-NN estimate of I(x;y) for continuous x and discrete labels y: neighbours within the "
        "same class, counts over all samples, max-norm, exact neighbours; ties in x broken by seeded noise "
        "independent of y. Biased low in high dimension and near "
        "the ceiling H(y). stderr/CI by disjoint subsampling."
    ),
    summary="an estimate (Ross's mixed k-NN for class labels; biased low in high dimension)",
    per_sample=True,
    analysis_params=(KNN_K,),
    preference={"I(h;y)": 2},
)
def mixed_knn(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int | Sequence[int] = 3,
    standardize: bool = True,
    jitter: float = 1e-5,
    precision: str = "float64",
    tile_elements: int | None = None,
    num_subsets: int = 10,
    seed: int = 0,
) -> MIResult:
    """Ross estimator; parameters as ksg (k may be an ensemble), except jitter: 1e-5 standardised units by
    default, far below any k-NN distance that matters (see the module docstring for why ties need it here).

    Minimum n: k + 1 per class for a value; 2 * max(20, 4 max(k)) for a CI (fewer: NaN CI, a warning, a note)."""
    n = x.shape[0]
    ks = neighbor_counts(k, n)
    (px,) = prepare_points([x], standardize_columns=standardize, jitter_scale=jitter, seed=seed, precision=precision)
    cautions = caution([constant_note("x", x), knn_dimension_note(n, x.shape[1])])
    labels = y.to(px.device)
    _, class_sizes = torch.unique(labels, return_counts=True)
    ties = tie_notes({"x": x}, TIE_RULE)
    if ties and jitter == 0:
        raise ValueError(f"jitter=0 leaves exact ties in x ({ties[0]}), where Ross's counts are meaningless; "
                         f"use jitter > 0 (default 1e-5)")
    notes = cautions + ties + precision_notes(px, precision)
    singletons = int((class_sizes == 1).sum())
    if singletons > n - 2:
        raise ValueError(f"y: {singletons} of {n} samples are alone in their class; mixed_knn needs classes with "
                         f">= 2 samples (same-class neighbours)")
    if singletons:
        notes += (f"{singletons} sample(s) in singleton classes left out (no same-class neighbour)",)

    terms = ross_terms(px, labels, ks, tile_elements)

    def value_of(rows: torch.Tensor | None) -> float:
        if rows is None:
            return float(terms.mean())
        rows = rows.to(px.device)
        return ross_value(px[rows], labels[rows], ks, tile_elements)

    params = {"k": ks if len(ks) > 1 else ks[0], "standardize": standardize, "jitter": jitter,
              "precision": precision, "seed": seed}
    result = subsample_result(
        value_of, n, kind="estimate", method="mixed_knn", params=params, seed=seed,
        num_subsets=num_subsets, min_subset_size=knn_min_subset_size(ks), notes=notes,
    )
    # samples of singleton classes have no term: then the terms do not index all n samples
    return dataclasses.replace(result, terms=None if singletons else terms.cpu())
