"""Which images each optimiser step sees: every image once per epoch, as the authors' release.

The release's loaders keep the last, smaller batch (``drop_last=False``), and under DDP its
``DistributedSampler`` pads the shuffled epoch to a multiple of the number of processes by repeating
its first indices. So does :func:`rank_batches`: with an instance head this matters — an image left
out of an epoch gets no positive for its row of W in that epoch.

The epoch's order is one permutation shared by every process; global batch ``k`` is
``padded[k·B : (k+1)·B]`` (the last one smaller) and process ``r`` takes the ``r``-th of its ``world``
equal contiguous parts, so a step's global batch is the same whatever the number of processes.
"""

from __future__ import annotations

import math

import torch


def padded_length(n: int, world: int) -> int:
    """The epoch's length after padding ``n`` images to a multiple of ``world`` processes."""
    return math.ceil(n / world) * world


def steps_per_epoch(n: int, batch: int, world: int) -> int:
    """Optimiser steps in an epoch that sees every one of ``n`` images (``batch`` a multiple of ``world``)."""
    return math.ceil(padded_length(n, world) / batch)


def rank_batches(order: torch.Tensor, batch: int, world: int, rank: int) -> list[torch.Tensor]:
    """This process's batches of an epoch: ``order`` (a permutation of the ``n`` images) padded to a
    multiple of ``world`` with its first indices, cut into global batches of ``batch`` (the last one
    smaller, still a multiple of ``world``), each split into ``world`` equal parts."""
    n = order.numel()
    padded = torch.cat([order, order[: padded_length(n, world) - n]])
    out = []
    for chunk in torch.split(padded, batch):
        part = chunk.numel() // world
        out.append(chunk[rank * part : (rank + 1) * part])
    return out


# -- revisiting samplers (issue: IDMM at small budgets) ------------------------------------------------
#
# With an instance head, row ``w_i`` of W receives its positive gradient only in the steps that contain
# image ``i``: once per epoch with the plain order. The two samplers below regroup those visits at equal
# compute (an epoch stays ``ceil(n / B)`` steps of ``B`` samples): ``repeat`` puts ``k`` copies of an
# image in the same batch (DeiT's repeated augmentation; Hoffer et al. 2020), ``sliding`` shifts a window
# of ``B`` over a stream of permutations by ``B / k`` per step, so an image is in ``k`` consecutive
# batches (PIC's sliding-window data scheduler, Cao et al. 2020). Either way an image is visited every
# ``k`` epochs on average, with ``k`` times the positives per visit; the stream continues across epochs,
# so every image is visited once per ``k`` epochs, none is skipped.

SAMPLERS = ("epoch", "repeat", "sliding")


def stream_slice(start: int, length: int, n: int, seed_of_cycle) -> torch.Tensor:
    """``length`` indices from position ``start`` of the stream ``perm_0 ‖ perm_1 ‖ …`` where ``perm_c``
    is the permutation of ``n`` images drawn with ``torch.Generator().manual_seed(seed_of_cycle(c))``."""
    parts, pos, end = [], start, start + length
    while pos < end:
        cycle, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed_of_cycle(cycle)))
        take = min(n - offset, end - pos)
        parts.append(perm[offset : offset + take])
        pos += take
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def revisit_order(
    sampler: str, n: int, batch: int, revisits: int, epoch: int, world: int, seed_of_cycle
) -> torch.Tensor:
    """The epoch's sample order for the ``repeat`` or ``sliding`` sampler: ``steps_per_epoch`` full global
    batches of ``batch`` samples (``batch`` a multiple of ``revisits`` and of ``world``), to be cut by
    :func:`rank_batches`. Depends only on (seed, epoch): a resumed run replays it exactly."""
    if sampler not in SAMPLERS[1:]:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    steps = steps_per_epoch(n, batch, world)
    fresh = batch // revisits  # images entering per step
    if fresh < 1 or batch % revisits:
        raise ValueError(f"batch {batch} must be a multiple of revisits {revisits}")
    start = epoch * steps * fresh
    if sampler == "repeat":  # k adjacent copies: all inside one batch since fresh * k == batch
        return stream_slice(start, steps * fresh, n, seed_of_cycle).repeat_interleave(revisits)
    # sliding: step t takes stream[s + t·fresh − (k−1)·fresh : s + t·fresh + fresh]; the first window of the
    # run starts at stream position 0 (its first steps see the window filling up, as PIC's scheduler)
    lead = (revisits - 1) * fresh
    window = stream_slice(max(0, start - lead), steps * fresh + min(lead, start), n, seed_of_cycle)
    offset = min(lead, start)  # position of ``start`` inside ``window``
    batches = []
    for t in range(steps):
        hi = offset + (t + 1) * fresh
        lo = max(0, hi - batch)
        chunk = window[lo:hi]
        if chunk.numel() < batch:  # the very first steps of the run: pad with the next fresh images
            chunk = stream_slice(0, batch, n, seed_of_cycle)
        batches.append(chunk)
    return torch.cat(batches)


def epoch_order(sampler: str, n: int, batch: int, revisits: int, epoch: int, world: int, seed_of_cycle) -> torch.Tensor:
    """The epoch's sample order for any sampler: ``epoch`` = the permutation seeded ``seed_of_cycle(epoch)``
    (each image once), else :func:`revisit_order` (whose stream's ``c``-th permutation is that same one)."""
    if sampler == "epoch":
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed_of_cycle(epoch)))
    return revisit_order(sampler, n, batch, revisits, epoch, world, seed_of_cycle)
