"""The exact tiled k-NN machinery shared by the k-NN estimators."""

import math

import pytest
import torch

from mi_analysis.estimators.knn import (
    count_below,
    exclude_self,
    max_norm_tile,
    neighbor_counts,
    prepare_points,
    smallest_k,
    tile_rows,
)



@pytest.mark.parametrize("n", [7, 200, 1000, 1037])  # direct topk, and pruned with / without leftover columns
def test_smallest_k_matches_topk_values(n):
    gen = torch.Generator().manual_seed(n)
    dist = torch.rand(9, n, generator=gen)
    dist[:, ::5] = math.inf  # masked entries, as in the same-class search
    dist[0, :] = 0.25  # a row of ties
    for k in (1, 3, 5):
        values, cols = smallest_k(dist, k)
        expected = dist.topk(k, dim=1, largest=False, sorted=True).values
        assert torch.equal(values, expected)
        assert torch.equal(dist.gather(1, cols), values)  # indices point at those values


def test_max_norm_tile_and_self_exclusion():
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(30, 4, generator=gen)
    out, buf = torch.empty(10, 30), torch.empty(10, 30)
    tile = max_norm_tile(pts[10:20], pts.T.contiguous(), out, buf)
    assert torch.equal(tile, (pts[10:20, None, :] - pts[None, :, :]).abs().amax(dim=2))
    exclude_self(tile, 10)
    assert torch.isinf(tile[torch.arange(10), torch.arange(10, 20)]).all()


def test_count_below_strict_and_inclusive():
    dist = torch.tensor([[0.1, 0.2, 0.3, 0.2], [1.0, 2.0, 3.0, 4.0]])
    radius = torch.tensor([[0.2], [3.0]])
    hits = torch.empty(2, 4, dtype=torch.bool)
    assert count_below(dist, radius, hits, inclusive=False).tolist() == [1, 2]
    assert count_below(dist, radius, hits, inclusive=True).tolist() == [3, 3]


def test_grid_is_shared_and_fine():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    b = torch.randn(100, 3, generator=gen, dtype=torch.float64)
    pa, pb = prepare_points([a, b * 100], standardize_columns=True, jitter_scale=0.0, seed=0, precision="float32")
    largest = max(float(pa.abs().max()), float(pb.abs().max()))
    step = 2.0 ** -(24 - 3 - math.floor(math.log2(largest)))  # one grid for both blocks
    assert largest / step < 2**22 and step <= 2.0**-19  # differences fit float32's 24 bits; grid << std
    for p in (pa, pb):
        assert torch.equal(torch.round(p.double() / step) * step, p.double())
    assert torch.allclose(pa.double(), (a - a.mean(0)) / a.std(0, unbiased=False), atol=step)


def test_tile_rows_and_k_checks():
    assert tile_rows(1000, torch.device("cpu"), tile_elements=10_000) == 10
    assert tile_rows(10**7, torch.device("cpu"), tile_elements=10) == 1
    assert neighbor_counts([5, 3, 5], 10) == (3, 5)
    with pytest.raises(ValueError, match="empty sequence"):
        neighbor_counts([], 10)
    with pytest.raises(ValueError, match="k=10 neighbours need more than 10 samples"):
        neighbor_counts((3, 10), 10)
