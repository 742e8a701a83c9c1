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
