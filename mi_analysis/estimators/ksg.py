"""Kraskov-Stoegbauer-Grassberger k-NN estimators of I(x; y) for continuous x and y.

Kraskov, Stoegbauer, Grassberger (2004), "Estimating mutual information", Phys. Rev. E 69.
With max-norm distances in the joint space z = (x, y), for each sample i:
  algorithm 1: eps_i = distance to its k-th neighbour in z; n_x(i) = #{j != i: |x_i - x_j| < eps_i}
      I = psi(k) + psi(n) - < psi(n_x + 1) + psi(n_y + 1) >
  algorithm 2: eps_x(i), eps_y(i) = largest x- and y-distance among its k nearest neighbours in z;
      n_x(i) = #{j != i: |x_i - x_j| <= eps_x(i)}
      I = psi(k) - 1/k + psi(n) - < psi(n_x) + psi(n_y) >
Neighbours are exact (knn.py: bounded-memory tiles, float64 arithmetic as a k-d tree's).

Ties (discrete values, ReLU zeros, repeated rows) are not broken by noise: noise turns each tie
into a micro-cluster whose k-NN counts read as dependence (0.4 nats for independent coins). They
follow the mixed discrete-continuous rule of Gao, Kannan, Oh & Viswanath (2017, "Estimating mutual
information for discrete-continuous mixtures", NeurIPS): a sample whose k-th joint neighbour is a
duplicate (eps_i = 0) contributes psi(c_xy) + psi(n) - psi(c_x) - psi(c_y), with c the numbers of
samples equal to it in z, x and y (itself included), which is the plug-in estimate on fully
discrete data; all other samples contribute the KSG term (Gao et al. use log n for psi(n), a
difference of 1/(2n)). Tie-free data give exactly KSG; algorithm 2 gets the same rule. Consistent
for mixtures of discrete and continuous parts (Gao et al., Theorem 2, for algorithm 1).
Both are biased low when the MI is large relative to log n or the dimension is high.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from scipy.special import digamma

from .interface import MIResult
from .diagnostics import caution, check_no_mixed_columns, ceiling_note, constant_note, knn_dimension_note, tie_notes, with_notes
from .knn import (KNN_K, count_below, exclude_self, knn_min_subset_size, max_norm_tile, neighbor_counts, precision_notes,
                  prepare_points, smallest_k, tile_rows)
from .registry import register
from .uncertainty import subsample_result


TIE_RULE = ("ties: samples whose k-th joint neighbour is a duplicate use the mixed discrete-continuous rule of "
            "Gao et al. (2017); on fully discrete data this is the plug-in estimate")


def ksg_counts(
    px: torch.Tensor, py: torch.Tensor, ks: Sequence[int], algorithm: int, tile_elements: int | None = None
) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per-sample counts {k: (n_x (n,), n_y (n,), c_xy (n,))} for prepared points px (n, dx), py (n, dy).

    c_xy is 0 for samples with eps_i > 0 (n_x, n_y are then the KSG counts of `algorithm`); for
    samples whose k-th joint neighbour is a duplicate it is the number of their duplicates in z,
    and n_x, n_y count their duplicates in x and y (self excluded throughout).
    """
    n, device = px.shape[0], px.device
    rows = tile_rows(n, device, tile_elements)
    px_t, py_t = px.T.contiguous(), py.T.contiguous()
    dx_buf, dy_buf, scratch, joint = (torch.empty(min(rows, n), n, dtype=px.dtype, device=device) for _ in range(4))
    hits = torch.empty(min(rows, n), n, dtype=torch.bool, device=device)
    counts = {k: tuple(torch.empty(n, dtype=torch.int64, device=device) for _ in range(3)) for k in ks}
    k_max = max(ks)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        m = stop - start
        dx = max_norm_tile(px[start:stop], px_t, dx_buf[:m], scratch[:m])
        dy = max_norm_tile(py[start:stop], py_t, dy_buf[:m], scratch[:m])
        exclude_self(dx, start)  # +inf on the diagonal: self is neither a neighbour nor counted
        exclude_self(dy, start)
        dz = torch.maximum(dx, dy, out=joint[:m])
        near_d, near_i = smallest_k(dz, k_max)  # (m, k_max), ascending
        for k in ks:
            nx, ny, cxy = counts[k]
            if algorithm == 1:
                eps = near_d[:, k - 1 : k]
                nx[start:stop] = count_below(dx, eps, hits[:m], inclusive=False)
                ny[start:stop] = count_below(dy, eps, hits[:m], inclusive=False)
            else:
                eps_x = dx.gather(1, near_i[:, :k]).amax(dim=1, keepdim=True)
                eps_y = dy.gather(1, near_i[:, :k]).amax(dim=1, keepdim=True)
                nx[start:stop] = count_below(dx, eps_x, hits[:m], inclusive=True)
                ny[start:stop] = count_below(dy, eps_y, hits[:m], inclusive=True)
            cxy[start:stop] = 0
            tied = (near_d[:, k - 1] == 0).nonzero().squeeze(1)  # rows whose k-th joint neighbour is a duplicate
            if tied.numel():
                zero = torch.zeros(tied.numel(), 1, dtype=px.dtype, device=device)
                t = tied.numel()
                cxy[start + tied] = count_below(dz[tied], zero, hits[:t], inclusive=True)
                nx[start + tied] = count_below(dx[tied], zero, hits[:t], inclusive=True)
                ny[start + tied] = count_below(dy[tied], zero, hits[:t], inclusive=True)
    return counts


def ksg_terms(
    px: torch.Tensor, py: torch.Tensor, ks: Sequence[int], algorithm: int, tile_elements: int | None = None
) -> torch.Tensor:
    """Per-sample KSG terms (n,) float64 on prepared points (ties by the mixed rule), averaged over the
    ensemble of k values: psi(n) + (sample i's digamma terms); their mean is the estimate in nats."""
    n = px.shape[0]
    psi = torch.special.digamma
    total = torch.zeros(n, dtype=torch.float64, device=px.device)
    for k, (nx, ny, cxy) in ksg_counts(px, py, ks, algorithm, tile_elements).items():
        nx, ny, cxy = nx.to(torch.float64), ny.to(torch.float64), cxy.to(torch.float64)
        if algorithm == 1:
            terms = digamma(k) - psi(nx + 1) - psi(ny + 1)
        else:
            terms = digamma(k) - 1.0 / k - psi(nx) - psi(ny)
        tied = cxy > 0
        total += digamma(n) + torch.where(tied, psi(cxy + 1) - psi(nx + 1) - psi(ny + 1), terms)
    return total / len(ks)


def ksg_value(
    px: torch.Tensor, py: torch.Tensor, ks: Sequence[int], algorithm: int, tile_elements: int | None = None
) -> float:
    """KSG estimate in nats on prepared points (ties by the mixed rule), averaged over the ensemble of k values."""
    return float(ksg_terms(px, py, ks, algorithm, tile_elements).mean())


def _ksg(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    algorithm: int,
    method: str,
    k: int | Sequence[int],
    standardize: bool,
    jitter: float,
    precision: str,
    tile_elements: int | None,
    num_subsets: int,
    seed: int,
) -> MIResult:
    n = x.shape[0]
    ks = neighbor_counts(k, n)
    px, py = prepare_points([x, y], standardize_columns=standardize, jitter_scale=jitter, seed=seed,
                            precision=precision)
    check_no_mixed_columns("x", px, method)
    check_no_mixed_columns("y", py, method)
    notes = caution([constant_note("x", x), constant_note("y", y), knn_dimension_note(n, x.shape[1] + y.shape[1])])
    notes += tie_notes({"x": px, "y": py}, TIE_RULE) + precision_notes(px, precision)

    terms = ksg_terms(px, py, ks, algorithm, tile_elements)

    def value_of(rows: torch.Tensor | None) -> float:
        if rows is None:
            return float(terms.mean())
        rows = rows.to(px.device)
        return ksg_value(px[rows], py[rows], ks, algorithm, tile_elements)

    params = {"k": ks if len(ks) > 1 else ks[0], "standardize": standardize, "jitter": jitter,
              "precision": precision, "seed": seed}
    result = subsample_result(
        value_of, n, kind="estimate", method=method, params=params, seed=seed,
        num_subsets=num_subsets, min_subset_size=knn_min_subset_size(ks), notes=notes,
    )
    result = dataclasses.replace(result, terms=terms.cpu())
    return with_notes(result, caution([ceiling_note(result.value, n, min(ks))]))


_DESCRIPTION = (
    "Kraskov-Stoegbauer-Grassberger k-NN estimate of I(x;y) for continuous x, y (algorithm {alg}), max-norm, exact "
    "neighbours; ties (discrete values, ReLU zeros) by the mixed discrete-continuous rule of Gao et al. 2017. "
    "Consistent, but biased low when I(x;y) is large or the dimension is high; invariant to per-dimension "
    "rescaling when standardize=True. k may be a list (the value is averaged over those k). stderr/CI by disjoint "
    "subsampling."
)


@register("ksg", kind="estimate", y_type="continuous", description=_DESCRIPTION.format(alg=1),
          summary="an estimate (Kraskov-Stoegbauer-Grassberger k-NN, algorithm 1; biased low in high dimension)",
          per_sample=True, analysis_params=(KNN_K,))
def ksg(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int | Sequence[int] = 3,
    standardize: bool = True,
    jitter: float = 0.0,
    precision: str = "float64",
    tile_elements: int | None = None,
    num_subsets: int = 10,
    seed: int = 0,
) -> MIResult:
    """KSG algorithm 1.

    k: neighbours, an int or a sequence (ensemble: the value is the mean over those k).
    standardize: scale every column to zero mean, unit variance first (constant columns become 0).
    jitter: std of seeded noise added first, in standardised units (units of x and y when
        standardize=False). 0 (default): ties stay ties and follow the mixed rule (module docstring);
        noise would turn them into micro-clusters that read as dependence.
    precision: "float64" (default; exact on the data as given) or "float32" (about 2x faster; exact
        on a grid of <= 2^-19 std; float64 is used instead when some |value| >= 8 std, see knn.py).
    Minimum n: k + 1 for a value; 2 * max(20, 4 max(k)) for a CI (fewer: NaN CI, a warning and a note).
    tile_elements: values per (rows x n) distance tile; bounds memory (default by device).
    num_subsets: disjoint subsamples for stderr and CI (uncertainty.py).
    """
    return _ksg(x, y, algorithm=1, method="ksg", k=k, standardize=standardize, jitter=jitter, precision=precision,
                tile_elements=tile_elements, num_subsets=num_subsets, seed=seed)


@register("ksg2", kind="estimate", y_type="continuous", description=_DESCRIPTION.format(alg=2),
          summary="an estimate (Kraskov-Stoegbauer-Grassberger k-NN, algorithm 2; biased low in high dimension)",
          per_sample=True, analysis_params=(KNN_K,))
def ksg2(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: int | Sequence[int] = 3,
    standardize: bool = True,
    jitter: float = 0.0,
    precision: str = "float64",
    tile_elements: int | None = None,
    num_subsets: int = 10,
    seed: int = 0,
) -> MIResult:
    """KSG algorithm 2 (rectangular neighbourhoods; per Kraskov et al. a little less bias and a little more
    statistical error than algorithm 1). Parameters as ksg."""
    return _ksg(x, y, algorithm=2, method="ksg2", k=k, standardize=standardize, jitter=jitter, precision=precision,
                tile_elements=tile_elements, num_subsets=num_subsets, seed=seed)
