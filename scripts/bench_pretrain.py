"""Pretraining throughput: the full IDMM step vs a plain forward/backward/step loop, in one process.

Both loops train the same backbone + N-way head with AdamW on the same number of images per step
(2·B global + 4·B local crops at the pretraining resolution, as two backbone passes). The plain loop
feeds pre-made tensors; the IDMM loop takes uint8 images from the dataset and makes every crop,
flip, colour jitter, grayscale, blur and the CutMix on the fly (batched, on the training device).
The data pipeline's cost is ``1 − idmm / plain``; the target on CPU is ≤ 25 %.

    python scripts/bench_pretrain.py                       # demo setting on the embedded data
    python scripts/bench_pretrain.py --backbone deit_tiny_patch16_224 --resolution 112 --batch 256 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from idmm_tui.data.registry import load_split
from idmm_tui.engine.batches import build_bank, train_storage_size
from idmm_tui.engine.distributed import resolve_device
from idmm_tui.engine.views import crop_groups
from idmm_tui.methods import Batch, get_method
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import PretrainConfig


def build(args, n_instances: int, device: torch.device):
    torch.manual_seed(0)
    cfg = PretrainConfig(resolution=args.resolution, batch_size=args.batch, lr=1e-3, warmup_epochs=0, epochs=1)
    backbone = create_backbone(args.backbone, img_size=args.resolution, drop_path_rate=0.1)
    module = get_method("idmm").build(backbone, backbone.num_features, n_instances, cfg).to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, weight_decay=1e-3)
    return cfg, module, optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


def bench_plain(args, bank, device, amp: bool) -> float:
    cfg, module, optimizer = build(args, len(bank), device)
    groups = crop_groups(cfg)
    res = cfg.resolution
    tensors = [torch.randn(n * args.batch, 3, res, res, device=device) for n, _ in groups]
    targets = [torch.randint(len(bank), (n * args.batch,), device=device) for n, _ in groups]
    images = 0
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            sync(device)
            start, images = time.perf_counter(), 0
        with autocast(device, amp):
            loss = sum(F.cross_entropy(module(x).float(), y) for x, y in zip(tensors, targets, strict=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += sum(x.shape[0] for x in tensors)
    sync(device)
    return images / (time.perf_counter() - start)


def bench_idmm(args, bank, device, amp: bool) -> float:
    cfg, module, optimizer = build(args, len(bank), device)
    method = get_method("idmm")
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(bank), generator=torch.Generator().manual_seed(1))
    needed = (args.warmup + args.steps) * args.batch
    order = order.repeat(needed // len(order) + 1)[:needed]
    images = 0
    for i, (img, sizes, labels, ids) in enumerate(bank.batches(list(order.split(args.batch)))):
        if i == args.warmup:
            sync(device)
            start, images = time.perf_counter(), 0
        batch = Batch(img.to(device, non_blocking=True), sizes.to(device), labels.to(device), ids.to(device))
        with autocast(device, amp):
            loss, seen = method.loss(module, batch, gen, cfg, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += seen
    sync(device)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="vit_micro_p4")
    parser.add_argument("--dataset", default="embedded")
    parser.add_argument("--root", default="")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument(
        "--storage", type=int, default=0, help="stored image side (default: the stage's, resolution / sqrt(0.05))"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=["auto", "bf16", "off"], default="auto")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two loops this many times")
    args = parser.parse_args()

    device = resolve_device(args.device)
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    side = args.storage or train_storage_size(args.resolution, 0.05)
    bank = build_bank(load_split(args.dataset, args.root or None, "train"), side)
    print(
        f"backbone {args.backbone}  resolution {args.resolution}  batch {args.batch} (x6 crops)  "
        f"device {device}  amp {'bf16' if amp else 'off'}  threads {torch.get_num_threads()}"
    )
    plain, idmm = [], []
    for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
        plain.append(bench_plain(args, bank, device, amp))
        idmm.append(bench_idmm(args, bank, device, amp))
    best_plain, best_idmm = max(plain), max(idmm)
    print(
        f"plain fwd/bwd/step on pre-made tensors : {best_plain:9.1f} images/s  (runs: "
        + ", ".join(f"{v:.0f}" for v in plain)
        + ")"
    )
    print(
        f"IDMM step (multi-crop+aug+CutMix)      : {best_idmm:9.1f} images/s  (runs: "
        + ", ".join(f"{v:.0f}" for v in idmm)
        + ")"
    )
    print(
        f"ratio idmm/plain {best_idmm / best_plain:.3f}  ->  data pipeline overhead "
        f"{100 * (1 - best_idmm / best_plain):.1f} %"
    )


if __name__ == "__main__":
    main()
