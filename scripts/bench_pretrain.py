"""Pretraining throughput: the full IDMM step vs a plain forward/backward/step loop, in one process.

Both loops train the same backbone + N-way head with AdamW on the same number of images per step
(2·B global + 4·B local crops at the pretraining resolution, as two backbone passes). The plain loop
feeds pre-made tensors; the IDMM loop takes uint8 images from the dataset and makes every crop,
flip, colour jitter, grayscale, blur and the CutMix on the fly (batched, on the training device).
The data pipeline's cost is ``1 − idmm / plain``; the target on CPU is ≤ 25 %.

    python scripts/bench_pretrain.py                       # demo setting on the embedded data
    python scripts/bench_pretrain.py --compile             # also compiled: prints compiled / eager
    python scripts/bench_pretrain.py --backbone deit_tiny_patch16_224 --resolution 112 --batch 256 --device cuda

With ``--compile`` both loops also run with the backbone compiled (``torch.compile``, in place, as
``compile = true`` in a recipe); the first step of each shape is the compilation and is excluded with
the warm-up steps; its time is printed.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from idmm_tui.data.registry import load_split
from idmm_tui.engine.batches import build_bank, train_storage_size
from idmm_tui.engine.distributed import resolve_device
from idmm_tui.engine.optim import make_optimizer
from idmm_tui.engine.views import crop_groups
from idmm_tui.methods import Batch, get_method
from idmm_tui.models.registry import create_backbone
from idmm_tui.recipe import pretrain_config


def build(args, n_instances: int, device: torch.device, compiled: bool):
    torch.manual_seed(0)
    cfg = pretrain_config(
        method="idmm", resolution=args.resolution, batch_size=args.batch, lr=1e-3, warmup_epochs=0, epochs=1
    )
    backbone = create_backbone(args.backbone, img_size=args.resolution, drop_path_rate=0.1)
    module = get_method("idmm").build(backbone, backbone.num_features, n_instances, cfg).to(device)
    if compiled:
        module.backbone.compile()
    return cfg, module, make_optimizer(module, cfg)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


def bench_plain(args, bank, device, amp: bool, compiled: bool = False) -> float:
    cfg, module, optimizer = build(args, len(bank), device, compiled)
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


def bench_idmm(args, bank, device, amp: bool, compiled: bool = False) -> float:
    cfg, module, optimizer = build(args, len(bank), device, compiled)
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
    parser.add_argument("--compile", action="store_true", help="also run both loops with the backbone compiled")
    args = parser.parse_args()

    device = resolve_device(args.device)
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    side = args.storage or train_storage_size(args.resolution, 0.05)
    bank = build_bank(load_split(args.dataset, args.root or None, "train"), side)
    print(
        f"backbone {args.backbone}  resolution {args.resolution}  batch {args.batch} (x6 crops)  "
        f"device {device}  amp {'bf16' if amp else 'off'}  threads {torch.get_num_threads()}"
    )
    variants = [False, True] if args.compile else [False]
    best: dict[tuple[str, bool], float] = {}
    for compiled in variants:
        plain, idmm = [], []
        tag = "compiled" if compiled else "eager"
        for _ in range(args.repeats):  # interleaved, so that machine noise hits both alike
            start = time.perf_counter()
            plain.append(bench_plain(args, bank, device, amp, compiled))
            if compiled and len(plain) == 1:
                print(f"  (first compiled loop incl. compiling: {time.perf_counter() - start:.1f} s)")
            idmm.append(bench_idmm(args, bank, device, amp, compiled))
        best[("plain", compiled)], best[("idmm", compiled)] = max(plain), max(idmm)
        print(
            f"[{tag}] plain fwd/bwd/step on pre-made tensors : {max(plain):9.1f} images/s  (runs: "
            + ", ".join(f"{v:.0f}" for v in plain)
            + ")"
        )
        print(
            f"[{tag}] IDMM step (multi-crop+aug+CutMix)      : {max(idmm):9.1f} images/s  (runs: "
            + ", ".join(f"{v:.0f}" for v in idmm)
            + ")"
        )
        print(
            f"[{tag}] ratio idmm/plain {max(idmm) / max(plain):.3f}  ->  data pipeline overhead "
            f"{100 * (1 - max(idmm) / max(plain)):.1f} %"
        )
    if args.compile:
        for loop in ("plain", "idmm"):
            print(f"compiled / eager, {loop}: {best[(loop, True)] / best[(loop, False)]:.3f}")


if __name__ == "__main__":
    main()
