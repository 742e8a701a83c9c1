"""Every image every epoch: the epoch's batches in one process and in two gloo processes (padded)."""

from __future__ import annotations

import collections
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from idmm_tui.engine.sampling import padded_length, rank_batches, steps_per_epoch


def _order(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(n))


@pytest.mark.parametrize(("n", "batch"), [(2040, 256), (24, 8), (25, 8), (7, 8), (1, 4)])
def test_one_process_sees_every_image_once(n, batch):
    chunks = rank_batches(_order(n), batch, world=1, rank=0)
    seen = torch.cat(chunks)
    assert sorted(seen.tolist()) == list(range(n))
    assert len(chunks) == steps_per_epoch(n, batch, 1) == -(-n // batch)  # 2040 / 256 -> 8 steps, not 7
    assert all(c.numel() == batch for c in chunks[:-1]) and 0 < chunks[-1].numel() <= batch


def test_flowers_at_batch_256_is_eight_steps_with_a_last_batch_of_248():
    chunks = rank_batches(_order(2040), 256, world=1, rank=0)
    assert [c.numel() for c in chunks] == [256] * 7 + [248]


def _worker(rank: int, world: int, port: int, n: int, batch: int, queue) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mine = rank_batches(_order(n), batch, dist.get_world_size(), dist.get_rank())
        gathered: list = [None] * world
        dist.all_gather_object(gathered, [c.tolist() for c in mine])
        if rank == 0:
            queue.put(gathered)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("n", "batch"), [(25, 8), (24, 8)])
def test_two_gloo_processes_see_every_image_with_padding(n, batch):
    world = 2
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, world, port, n, batch, queue)) for r in range(world)]
    for p in procs:
        p.start()
    per_rank = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    steps = steps_per_epoch(n, batch, world)
    assert all(len(batches) == steps for batches in per_rank)  # every rank takes the same number of steps
    for k in range(steps):  # ... with equal shares of each global batch
        assert len({len(batches[k]) for batches in per_rank}) == 1
    counts = collections.Counter(i for batches in per_rank for b in batches for i in b)
    assert set(counts) == set(range(n))  # every image at least once
    extra = padded_length(n, world) - n  # DistributedSampler's padding: the epoch's first indices again
    assert sum(counts.values()) == n + extra and sorted(counts.values()).count(2) == extra
