"""Seeded, stratified choice of indices: the one sampling rule behind every split and subset."""

from __future__ import annotations

import numpy as np
import torch

# Independent random streams per purpose, so that e.g. changing train_subset does not move the
# test subset: numpy Generator seeded with [seed, stream].
STREAM_TRAIN_SUBSET = 1
STREAM_VAL = 2
STREAM_TEST_SUBSET = 3
STREAM_LOADER = 4


def rng_for(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def torch_generator(*entropy: int) -> torch.Generator:
    """A CPU torch.Generator whose 63-bit seed is mixed from `entropy` (non-negative ints) by
    numpy's SeedSequence, so that nearby tuples such as (seed, epoch) give unrelated streams."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


def stratified_choice(labels: torch.Tensor, count: int, rng: np.random.Generator) -> torch.Tensor:
    """`count` indices into `labels` (int64 (N,)), sorted, with each class represented in
    proportion to its frequency: class c gets floor(count * n_c / N) and the remaining picks go
    to the classes with the largest remainders (ties to the smaller label). Within a class the
    picks are a uniform random subset."""
    total = labels.shape[0]
    if not 0 <= count <= total:
        raise ValueError(f"count must be in [0, {total}], got {count}")
    classes, class_sizes = np.unique(labels.numpy(), return_counts=True)
    products = count * class_sizes
    quota = products // total
    remainders = products % total
    leftover = count - int(quota.sum())
    quota[np.argsort(-remainders, kind="stable")[:leftover]] += 1
    label_array = labels.numpy()
    chosen = [rng.permutation(np.flatnonzero(label_array == cls))[:q] for cls, q in zip(classes, quota)]
    picked = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return torch.from_numpy(picked.astype(np.int64))


def complement(indices: torch.Tensor, total: int) -> torch.Tensor:
    """The sorted indices in [0, total) that are not in `indices`."""
    keep = torch.ones(total, dtype=torch.bool)
    keep[indices] = False
    return torch.nonzero(keep).flatten()
