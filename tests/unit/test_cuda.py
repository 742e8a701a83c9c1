"""The CUDA path: bf16 autocast, the bank in GPU memory, fused AdamW, compile, NCCL + SyncBatchNorm.

Skipped without a CUDA device; ``scripts/gpu_check.sh`` runs them (``pytest -m cuda``) on a GPU machine.
"""

from __future__ import annotations

import json
import socket

import pytest
import torch

from idmm_tui.engine.optim import make_optimizer
from idmm_tui.methods import get_method
from idmm_tui.methods.base import Batch
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import pretrain_config

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

DEVICE = torch.device("cuda")


def _batch(n: int = 8, side: int = 40) -> Batch:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    return Batch(
        images.to(DEVICE),
        torch.tensor([[side, side]] * n, device=DEVICE),
        torch.arange(n, device=DEVICE) % 3,
        torch.arange(n, device=DEVICE),
    )


def _idmm_loss(amp: bool, compiled: bool = False) -> tuple[float, torch.nn.Module]:
    torch.manual_seed(0)
    cfg = pretrain_config(method="idmm", resolution=32, batch_size=8, lr=1e-3, epochs=1, local_crops=2)
    module = get_method("idmm").build(create_backbone("vit_nano_p2", img_size=32), 64, 8, cfg).to(DEVICE)
    if compiled:
        module.backbone.compile()
    optimizer = make_optimizer(module, cfg)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        loss, _ = get_method("idmm").loss(module, _batch(), torch.Generator().manual_seed(1), cfg, 0)
    loss.backward()
    optimizer.step()
    return float(loss), module


def test_idmm_step_in_bf16_is_close_to_fp32_and_uses_fused_adamw():
    fp32, module = _idmm_loss(amp=False)
    bf16, _ = _idmm_loss(amp=True)
    assert torch.isfinite(torch.tensor([fp32, bf16])).all()
    assert bf16 == pytest.approx(fp32, rel=0.05)
    optimizer = make_optimizer(module, pretrain_config(method="idmm", lr=1e-3))
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults.get("fused")


def test_compiled_step_matches_eager():
    eager, _ = _idmm_loss(amp=True)
    compiled, _ = _idmm_loss(amp=True, compiled=True)
    assert compiled == pytest.approx(eager, rel=0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nccl_process_group_with_syncbatchnorm_trains_a_simclr_step():
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        cfg = pretrain_config(method="simclr", resolution=32, proj_dim=16, proj_hidden=32, lr=1e-3)
        module = get_method("simclr").build(create_backbone("vit_nano_p2", img_size=32), 64, 8, cfg).to(DEVICE)
        module = DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(module), device_ids=[0])
        assert any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = get_method("simclr").loss(module, _batch(), torch.Generator().manual_seed(1), cfg, 0)
        loss.backward()
        assert torch.isfinite(loss)
    finally:
        dist.destroy_process_group()


def test_a_tiny_run_on_the_gpu_keeps_its_bank_in_gpu_memory(cli, tiny_recipe, tmp_path):
    result = cli(
        "run",
        tiny_recipe,
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "gpu",
        "--json",
        "--set",
        "device=cuda",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "finetune.0.epochs=1",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "completed"
    log = (tmp_path / "runs" / "gpu" / "run.log").read_text()
    assert "in GPU memory" in log
