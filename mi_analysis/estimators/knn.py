"""Exact max-norm k-nearest-neighbour machinery in bounded-memory tiles (CPU and CUDA alike).

The k-NN estimators (ksg.py, mixed.py) never build an n x n matrix. They walk over tiles of
query rows: each tile holds the max-norm distances of `rows` query points to all n points
(rows x n), so memory is O(rows * n) with rows chosen from a budget of tile elements.

Exactness on a grid. `prepare_points` standardises, jitters and then rounds every coordinate to
a grid of step 2^-q, with q chosen so that |value| < 2^(mantissa - 2) grid steps. On that grid
every coordinate difference, |.|, max and comparison is exact in the working precision, so
float32 tiles give the same neighbours, distances and counts as exact arithmetic (and as a
float64 k-d tree on the same points), identical on CPU and GPU. With standardised data inside
+-8 std the float32 grid step is 2^-19 (about 2e-6 std), far below any k-NN distance that
matters; set precision="float64" for a grid of about 4e-15 std (slower: half the SIMD width).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .interface import AnalysisParam
from .validation import check_neighbors, jitter, standardize

KNN_K = AnalysisParam("knn", "k", "k", 3, "neighbours of the k-NN estimators (ksg, ksg2, mixed_knn)")

PRECISIONS = {"float32": (torch.float32, 24), "float64": (torch.float64, 53)}  # dtype, mantissa bits

# Values per (rows x n) tile buffer. On CPU 2^18 (1 MiB of float32) measured fastest at n = 10k (the
# handful of live tiles stay in cache, yet each op is large enough to amortise its overhead); on CUDA a tile
# of 2^26 float32 is 256 MiB per buffer (a handful are live at once).
TILE_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 26}


def neighbor_counts(k: int | Sequence[int], n: int) -> tuple[int, ...]:
    """k as a sorted tuple of distinct positive ints (an ensemble), each checked against n."""
    ks = (k,) if isinstance(k, int) and not isinstance(k, bool) else tuple(k)
    if not ks:
        raise ValueError("k must be a positive integer or a non-empty sequence of them, got an empty sequence")
    for kk in ks:
        check_neighbors(n, kk)
    return tuple(sorted(set(int(kk) for kk in ks)))


def prepare_points(
    blocks: Sequence[torch.Tensor], *, standardize_columns: bool, jitter_scale: float, seed: int, precision: str
) -> list[torch.Tensor]:
    """Standardise (optional), jitter and round each block (n, d_b) onto one shared exact grid.

    Returns the blocks in the working dtype of `precision`. The jitter (N(0, jitter_scale^2) in
    standardised units, seeded) breaks ties such as repeated values and ReLU zeros.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    if not (jitter_scale >= 0 and math.isfinite(jitter_scale)):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter_scale!r}")
    dtype, mantissa = PRECISIONS[precision]
    gen = torch.Generator().manual_seed(seed)
    ready = []
    for b in blocks:
        b = b.to(torch.float64)
        if standardize_columns:
            b = standardize(b)
        ready.append(jitter(b, jitter_scale, gen))
    largest = max(float(b.abs().max()) for b in ready)
    # |value| < 2^(mantissa-2) steps keeps every difference below 2^(mantissa-1) steps: exact.
    q = mantissa - 2 - math.floor(math.log2(largest)) - 1 if largest > 0 else 0
    step = 2.0 ** (-q)
    return [(torch.round(b / step) * step).to(dtype) for b in ready]


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

