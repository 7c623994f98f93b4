"""Exact max-norm k-nearest-neighbour machinery in bounded-memory tiles (CPU and CUDA alike).

The k-NN estimators (ksg.py, mixed.py) never build an n x n matrix. They walk over tiles of
query rows: each tile holds the max-norm distances of `rows` query points to all n points
(rows x n), so memory is O(rows * n) with rows chosen from a budget of tile elements.

Exactness. With precision="float64" (the default) the points are the data as given (after the
optional standardisation), and distances, max-norms and comparisons are the same float64
operations a k-d tree performs (scipy's cKDTree with p=inf), so neighbours and counts equal that
exact float64 computation, on CPU and GPU alike, for heavy tails and mixed scales too.
precision="float32" (about 2x faster) rounds every coordinate to one shared grid of step 2^-q,
with q chosen so that |value| < 2^22 grid steps: on that grid every difference, |.|, max and
comparison is exact in float32, so the counts are exact for the rounded points. Rounding moves a
point by at most half a step, which is below 2^-20 std only while every |value| < 8 std; beyond
that (heavy tails, outliers) the grid would blur most points, and the float64 path is taken
instead (the estimators note it).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .interface import AnalysisParam
from .validation import check_neighbors, jitter, standardize

KNN_K = AnalysisParam("knn", "k", "k", 3, "neighbours of the k-NN estimators (ksg, ksg2, mixed_knn)")

PRECISIONS = {"float32": (torch.float32, 24), "float64": (torch.float64, 53)}  # dtype, mantissa bits
FLOAT32_RANGE = 8.0  # |value| below which the float32 grid step is <= 2^-19 (rounding <= 2^-20 std)

# Values per (rows x n) tile buffer. On CPU 2^18 (1 MiB of float32) measured fastest at n = 10k (the
# handful of live tiles stay in cache, yet each op is large enough to amortise its overhead); on CUDA a tile
# of 2^26 float32 is 256 MiB per buffer (a handful are live at once).
TILE_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 26}


def neighbor_counts(k: int | Sequence[int], n: int) -> tuple[int, ...]:
    """k as a sorted tuple of distinct positive ints (an ensemble), each checked against n."""
    ks = tuple(k) if isinstance(k, (list, tuple)) else (k,)
    if not ks:
        raise ValueError("k must be a positive integer or a non-empty sequence of them, got an empty sequence")
    for kk in ks:
        check_neighbors(n, kk)
    return tuple(sorted(set(int(kk) for kk in ks)))


def prepare_points(
    blocks: Sequence[torch.Tensor], *, standardize_columns: bool, jitter_scale: float, seed: int, precision: str
) -> list[torch.Tensor]:
    """Standardise (optional) and jitter each block (n, d_b); float64, or float32 on one shared exact grid.

    The jitter (N(0, jitter_scale^2) in standardised units, seeded) is off by default in the
    estimators: ties are handled by their mixed discrete-continuous rule instead. precision
    "float32" falls back to float64 when some |value| reaches FLOAT32_RANGE (see module docstring);
    the returned dtype says which was used.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if isinstance(jitter_scale, bool) or not isinstance(jitter_scale, (int, float)) or not (
        jitter_scale >= 0 and math.isfinite(jitter_scale)
    ):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter_scale!r}")
    gen = torch.Generator().manual_seed(seed)
    ready = []
    for b in blocks:
        b = b.to(torch.float64)
        if standardize_columns:
            b = standardize(b)
        ready.append(jitter(b, jitter_scale, gen))
    largest = max(float(b.abs().max()) for b in ready)
    if precision == "float64" or largest >= FLOAT32_RANGE:
        return ready
    dtype, mantissa = PRECISIONS[precision]
    # |value| < 2^(mantissa-2) steps keeps every difference below 2^(mantissa-1) steps: exact.
    q = mantissa - 2 - math.floor(math.log2(largest)) - 1 if largest > 0 else 0
    step = 2.0 ** (-q)
    return [(torch.round(b / step) * step).to(dtype) for b in ready]


def precision_notes(points: torch.Tensor, precision: str) -> tuple[str, ...]:
    """A note when prepare_points used float64 although float32 was asked for."""
    if precision == "float32" and points.dtype == torch.float64:
        return (f"precision: float64 used instead of float32 (some |value| >= {FLOAT32_RANGE:g} std: the float32 grid "
                f"would blur the other points)",)
    return ()


def knn_min_subset_size(ks: Sequence[int]) -> int:
    """Rows per subsample for a k-NN stderr: 20, or 4 k for large k (so k stays small against the subsample)."""
    return max(20, 4 * max(ks))


def tile_rows(n_cols: int, device: torch.device, tile_elements: int | None = None) -> int:
    """Query rows per tile so that a (rows, n_cols) buffer holds about `tile_elements` values."""
    budget = tile_elements or TILE_ELEMENTS["cuda" if device.type == "cuda" else "cpu"]
    return max(1, budget // max(1, n_cols))


def max_norm_tile(queries: torch.Tensor, points_t: torch.Tensor, out: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """out[i, j] = max_d |queries[i, d] - points_t[d, j]|.

    queries (rows, d); points_t (d, n), the points transposed so each dimension is a contiguous
    row; out, buf (rows, n) scratch. One broadcast pass per dimension keeps memory at two tiles
    (a (rows, n, d) broadcast would cost d times more memory and reduce over a tiny inner axis).
    """
    torch.sub(queries[:, 0:1], points_t[0:1], out=out).abs_()
    for d in range(1, queries.shape[1]):
        torch.sub(queries[:, d : d + 1], points_t[d : d + 1], out=buf).abs_()
        torch.maximum(out, buf, out=out)
    return out


def exclude_self(dist: torch.Tensor, start: int) -> None:
    """Set the distance of each query row to itself to +inf (rows start.. of a (rows, n) tile)."""
    rows = dist.shape[0]
    dist[:, start : start + rows].diagonal().fill_(math.inf)


# Columns are split into GROUPS strided sets {j, j + g, j + 2g, ...}; see smallest_k.
GROUPS = 16


def smallest_k(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, column indices) of the k smallest entries of each row of dist (rows, n), ascending.

    Same values as dist.topk(k, largest=False), about 5x faster on CPU for k << n: the columns are
    split into 16 strided groups per residue j (columns j, j + g, ..., g = n // 16), the group minima
    (one vectorised pass) pick the k groups with the smallest minima, and topk runs on those k * 16
    candidate columns (plus the n - 16 g leftover columns). Exact: at most k - 1 groups have a
    minimum below tau, the k-th smallest group minimum, so the candidates hold every entry < tau and
    at least k entries <= tau, hence the k smallest values. Indices can differ from topk only
    between exactly equal distances.
    """
    rows, n = dist.shape
    g = n // GROUPS
    if g < 4 * k:  # too few groups to prune anything
        return dist.topk(k, dim=1, largest=False, sorted=True)
    group_min = dist[:, : g * GROUPS].view(rows, GROUPS, g).amin(dim=1)  # (rows, g)
    chosen = group_min.topk(k, dim=1, largest=False, sorted=False).indices  # (rows, k)
    offsets = torch.arange(GROUPS, device=dist.device) * g
    cols = (chosen[:, :, None] + offsets).reshape(rows, k * GROUPS)
    if g * GROUPS < n:
        cols = torch.cat([cols, torch.arange(g * GROUPS, n, device=dist.device).expand(rows, -1)], dim=1)
    values, pos = dist.gather(1, cols).topk(k, dim=1, largest=False, sorted=True)
    return values, cols.gather(1, pos)


def count_below(dist: torch.Tensor, radius: torch.Tensor, hits: torch.Tensor, *, inclusive: bool) -> torch.Tensor:
    """Per row, #{j: dist[i, j] < radius[i]} (<= when inclusive), int64 (rows,).

    radius (rows, 1); hits a bool scratch tile like dist. Summing the bools as uint8 into int32 is
    about 2.5x faster on CPU than summing the bool tensor.
    """
    (torch.le if inclusive else torch.lt)(dist, radius, out=hits)
    return hits.view(torch.uint8).sum(dim=1, dtype=torch.int32).to(torch.int64)

