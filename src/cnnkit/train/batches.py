"""Batches in a reproducible order: the data order and every random draw are functions of position.

Epoch e visits the training set in the permutation drawn from a generator seeded with
``derived_seed(seed, ORDER, e)``; in a distributed run of W processes the permutation is padded
to a multiple of W (repeating its first elements, as `torch.utils.data.DistributedSampler`
does) and process r takes positions r, r+W, r+2W… — disjoint shards that change every epoch.
Augmentation and dropout at global step s of process r draw from generators seeded with
``derived_seed(seed, AUGMENT, r, s)`` and ``derived_seed(seed, DROPOUT, r, s)``. The position
(epoch, batch, step) is therefore the whole random state: resuming there repeats the same
batches and the same random numbers as a run that was never interrupted.

Image sets held in memory are batched by tensor indexing (`ImageSet.batch`), with no
DataLoader and no per-sample Python; sets streamed from disk go through a DataLoader whose
sampler is the shard itself, starting at the resumed batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

ORDER, AUGMENT, DROPOUT, INIT = 1, 2, 3, 4


def derived_seed(*keys: int) -> int:
    """A 63-bit seed mixed from integer keys (numpy's SeedSequence hash), distinct per tuple."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation (size,) of epoch ``epoch``: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, ORDER, epoch))
    return torch.randperm(size, generator=generator)


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Process ``rank``'s share of ``order``: positions rank, rank+W, … of ``order`` padded to a
    multiple of W by repeating its start, so every process takes the same number of samples."""
    if world_size == 1:
        return order
    padding = (-len(order)) % world_size
    if padding:
        order = torch.cat([order, order[:padding]])
    return order[rank::world_size]


def batch_count(size: int, batch_size: int) -> int:
    return -(-size // batch_size)


def iterate_batches(
    imageset, indices: torch.Tensor, batch_size: int, start_batch: int = 0, workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x (B, C, H, W) float in [0, 1], y (B,))`` for consecutive slices of ``indices``,
    skipping the first ``start_batch`` batches; the last batch may be smaller."""
    if getattr(imageset, "in_memory", False):
        for start in range(start_batch * batch_size, len(indices), batch_size):
            x, y = imageset.batch(indices[start : start + batch_size])
            yield x, torch.as_tensor(y)
        return
    remaining = indices[start_batch * batch_size :].tolist()
    if not remaining:
        return
    loader = DataLoader(
        Subset(imageset, remaining), batch_size=batch_size, shuffle=False, num_workers=workers,
        persistent_workers=False, pin_memory=torch.cuda.is_available(),
    )
    for x, y in loader:
        yield x, torch.as_tensor(y)
