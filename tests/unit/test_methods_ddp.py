"""Baseline methods under DDP: 2 real CPU processes (gloo) against one process on the concatenated batch.

Each rank runs the method's own ``loss`` (augmentation included) on its shard, through a
DistributedDataParallel wrapper, and backpropagates; the mean of the ranks' losses, the (DDP-averaged)
gradients and the cross-device buffers (MoCo v2's queue, DINO's center) must equal what one process
computes on the whole batch, i.e. on the ranks' crops concatenated. The backbone is a linear layer and
the projection heads' BatchNorm runs in eval mode: per-device BN statistics are the one intended
difference from a single process (SyncBatchNorm would remove it), and they are not what this checks.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from idmm_tui.engine.views import crop_groups, pretrain_crops
from idmm_tui.methods import dino, get_method, simclr
from idmm_tui.methods.base import Batch, config_class
from idmm_tui.recipe import PretrainConfig

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = [pytest.mark.xdist_group("test_methods_ddp"), pytest.mark.slow]

WORLD, B = 2, 3  # processes, images per process
METHODS = ["simclr", "supcon", "mocov2", "mocov3", "dino"]
CROSS_BATCH = ["simclr", "supcon", "mocov3"]  # losses whose negatives are other images of the batch
TOL = 1e-5
BUFFERS = ("queue", "queue_ptr", "center")


def _cfg(name: str) -> PretrainConfig:
    values = dict(
        epochs=2,
        resolution=8,
        global_crops=2,
        local_crops=1,
        proj_dim=6,
        proj_hidden=10,
        queue_size=16,
        dino_out=12,
        blur_prob=0.0,
    )
    cls = config_class(name)
    return cls(**{k: v for k, v in values.items() if k in cls.model_fields})  # the keys this method has


def _build(name: str, cfg: PretrainConfig) -> nn.Module:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 12))
    module = get_method(name).build(backbone, 12, WORLD * B, cfg)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eval()  # a per-sample map, so the heads do not depend on how the batch is split
    return module


def _batch(rank: int) -> Batch:
    g = torch.Generator().manual_seed(100 + rank)
    images = torch.randint(0, 256, (B, 1, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.tensor([[0, 1, 0], [1, 2, 2]][rank])  # class 1 on both ranks: positives across devices
    return Batch(images, torch.tensor([[16, 16]] * B), labels, torch.arange(B) + rank * B)


def _gen(rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(7 + rank)


def _step(name: str, module: nn.Module, batch: Batch, gen: torch.Generator) -> dict:
    cfg = _cfg(name)
    loss, _ = get_method(name).loss(module, batch, gen, cfg, 0)
    loss.backward()
    inner = module.module if isinstance(module, DistributedDataParallel) else module
    grads = {k: p.grad.detach().clone() for k, p in inner.named_parameters() if p.grad is not None}
    buffers = {k: v.detach().clone() for k, v in inner.named_buffers() if k in BUFFERS}
    return {"loss": loss.detach().clone(), "grads": grads, "buffers": buffers}


def _worker(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        results = {}
        for name in METHODS:
            ddp = DistributedDataParallel(_build(name, _cfg(name)))
            results[name] = _step(name, ddp, _batch(rank), _gen(rank))
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    """Every method's step on each of the 2 ranks (one spawn for all methods)."""
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(f"file://{out / 'rendezvous'}", str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _crops(name: str, rank: int) -> list[torch.Tensor]:
    """The crops rank ``rank`` draws in the method's loss, one tensor per ``pretrain_crops`` call."""
    cfg = _cfg(name)
    calls = crop_groups(cfg) if name == "dino" else [(2, tuple(cfg.global_scale))]
    batch, gen = _batch(rank), _gen(rank)
    return [pretrain_crops(gen, batch.images, batch.sizes, n, s, cfg) for n, s in calls]


def _one_process(name: str, rank_ids: list[int], monkeypatch) -> dict:
    """The method's step in this (non-distributed) process on the images of ``rank_ids`` together, with the
    crops those ranks drew: crop ``v`` of every image, then crop ``v + 1`` (``pretrain_crops``'s order)."""
    per_rank = [_crops(name, r) for r in rank_ids]
    merged = []
    for call in zip(*per_rank, strict=True):
        n = call[0].shape[0] // B
        merged.append(torch.cat([part[v * B : (v + 1) * B] for v in range(n) for part in call]))
    queue = iter(merged)

    def replay(gen, images, sizes, n_crops, scale, cfg):
        crops = next(queue)
        assert crops.shape[0] == n_crops * images.shape[0]
        return crops

    batches = [_batch(r) for r in rank_ids]
    batch = Batch(*(torch.cat([getattr(b, f) for b in batches]) for f in ("images", "sizes", "labels", "instance_ids")))
    with monkeypatch.context() as m:
        m.setattr(simclr, "pretrain_crops", replay)
        m.setattr(dino, "pretrain_crops", replay)
        result = _step(name, _build(name, _cfg(name)), batch, torch.Generator())
    assert next(queue, None) is None
    return result


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], relative: bool = False) -> float:
    """Largest ``max |a − b|`` over the tensors (divided by ``max |b|`` of each when ``relative``)."""
    assert a.keys() == b.keys()
    scale = {k: float(b[k].abs().max()) if relative else 1.0 for k in b}
    return max(float((a[k].double() - b[k].double()).abs().max()) / max(scale[k], 1e-30) for k in a)


@pytest.mark.parametrize("name", METHODS)
def test_ddp_step_equals_one_process_on_the_global_batch(name, ranks, monkeypatch):
    whole = _one_process(name, list(range(WORLD)), monkeypatch)
    r0, r1 = ranks[0][name], ranks[1][name]
    # DDP: one gradient on every rank, the average of the ranks'
    assert _max_diff(r0["grads"], r1["grads"]) == 0.0
    assert r0["grads"] and len(r0["grads"]) == len(whole["grads"])
    # each rank's loss is the mean over its own anchors: their mean is the global-batch loss, and DDP's
    # average of the gradients the global-batch gradient (relative: DINO's gradients reach ~1e5)
    assert float((r0["loss"] + r1["loss"]) / 2) == pytest.approx(float(whole["loss"]), rel=TOL, abs=TOL)
    assert _max_diff(r0["grads"], whole["grads"], relative=True) < TOL
    # the queue holds the keys of both ranks in rank order; the center is the mean over both ranks
    for r in (r0, r1):
        assert r["buffers"].keys() == whole["buffers"].keys()
        assert not whole["buffers"] or _max_diff(r["buffers"], whole["buffers"]) < TOL
    if name == "mocov2":
        assert int(whole["buffers"]["queue_ptr"]) == WORLD * B
    if name in CROSS_BATCH:  # the check has teeth: per-device negatives (DDP over each rank alone) differ
        alone = [_one_process(name, [r], monkeypatch) for r in range(WORLD)]
        local = {k: (alone[0]["grads"][k] + alone[1]["grads"][k]) / 2 for k in whole["grads"]}
        assert float((alone[0]["loss"] + alone[1]["loss"]) / 2) != pytest.approx(float(whole["loss"]), rel=0.1)
        assert _max_diff(local, whole["grads"], relative=True) > 0.1
