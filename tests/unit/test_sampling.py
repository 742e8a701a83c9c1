"""Every image every epoch: the epoch's batches in one process and in two gloo processes (padded)."""

from __future__ import annotations

import collections
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from idmm_tui.engine.sampling import padded_length, rank_batches, revisit_order, steps_per_epoch, stream_slice


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


# -- revisiting samplers --------------------------------------------------------------------------------


def _seed_of(c: int) -> int:
    return 1000 + c


@pytest.mark.parametrize("sampler", ["repeat", "sliding"])
@pytest.mark.parametrize(("n", "batch", "k"), [(2040, 256, 2), (2040, 256, 4), (25, 8, 2), (24, 8, 4)])
def test_revisit_samplers_keep_the_epochs_compute_and_visit_every_image(sampler, n, batch, k):
    steps = steps_per_epoch(n, batch, 1)
    epochs = [revisit_order(sampler, n, batch, k, e, 1, _seed_of) for e in range(3 * k)]
    assert all(o.numel() == steps * batch for o in epochs)  # equal compute: same steps, full batches
    for o in epochs:
        assert all(c.numel() == batch for c in rank_batches(o, batch, 1, 0))
    seen = collections.Counter(torch.cat(epochs).tolist())
    assert set(seen) == set(range(n))  # over 3k epochs, every image has been visited


def test_repeat_puts_k_copies_of_an_image_in_the_same_batch():
    order = revisit_order("repeat", 2040, 256, 4, epoch=3, world=1, seed_of_cycle=_seed_of)
    for chunk in rank_batches(order, 256, 1, 0):
        counts = collections.Counter(chunk.tolist())
        assert set(counts.values()) == {4} and len(counts) == 64


def test_sliding_puts_an_image_in_k_consecutive_batches():
    k, batch = 4, 8
    orders = [revisit_order("sliding", 24, batch, k, e, 1, _seed_of) for e in range(5)]
    chunks = [c for o in orders for c in rank_batches(o, batch, 1, 0)]
    # after the window has filled, every batch = the previous one shifted by batch / k
    for prev, cur in zip(chunks[k:], chunks[k + 1 :], strict=False):
        assert prev[batch // k :].tolist() == cur[: batch - batch // k].tolist()
    # epochs continue the same stream: the last batch of epoch 2 and the first of epoch 3 overlap
    steps = steps_per_epoch(24, batch, 1)
    assert steps * 3 > k
    assert chunks[3 * steps - 1][batch // k :].tolist() == chunks[3 * steps][: batch - batch // k].tolist()


def test_stream_continues_across_the_permutations():
    n = 10
    whole = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(_seed_of(c))) for c in range(3)])
    assert stream_slice(7, 16, n, _seed_of).tolist() == whole[7:23].tolist()


def test_revisits_must_divide_the_batch():
    with pytest.raises(ValueError, match="multiple of revisits"):
        revisit_order("repeat", 100, 10, 3, 0, 1, _seed_of)
