"""Can a pretraining method fit one fixed batch? A quick diagnostic for "the loss does not fall".

Runs the method's real loss (its augmentations, heads, momentum/centering updates) with AdamW on the
first N training images of a recipe's dataset for a few steps and prints the loss. A method that cannot
lower its loss on one batch has an optimisation problem (or a collapse), not a data-size problem.

    python scripts/fit_one_batch.py recipes/methods-demo.toml --method dino
    python scripts/fit_one_batch.py recipes/methods-demo.toml --method dino \
        --set pretrain.teacher_temp=0.02 --set pretrain.teacher_temp_start=0.02 --steps 90
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from idmm_tui.data.registry import load_configured
from idmm_tui.engine.batches import build_bank, train_storage_size
from idmm_tui.engine.optim import make_optimizer
from idmm_tui.engine.views import crop_groups
from idmm_tui.launch import resolve_recipe
from idmm_tui.methods import get_method
from idmm_tui.methods.base import Batch
from idmm_tui.models.registry import create_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--method", default=None, help="pretraining method (default: the recipe's)")
    parser.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    overrides = ([f"pretrain.method={args.method}"] if args.method else []) + args.set
    recipe = resolve_recipe(args.recipe, overrides)
    cfg = recipe.pretrain
    method = get_method(cfg.method)
    backbone = create_backbone(recipe.model.backbone, img_size=cfg.resolution, drop_path_rate=0.0)
    module = method.build(backbone, int(backbone.num_features), args.images, cfg)
    optimizer = make_optimizer(module, cfg)
    bank = build_bank(
        load_configured(recipe.data, "train"),
        train_storage_size(cfg.resolution, min(s[0] for _, s in crop_groups(cfg))),
        cache="auto",
        num_workers=0,
    )
    images, sizes, labels, _ = next(bank.batches([torch.arange(args.images)]))
    batch = Batch(images, sizes, labels, torch.arange(args.images))
    if cfg.method == "dino":
        pairs = cfg.global_crops * (cfg.global_crops + cfg.local_crops - 1)
        print(f"uniform outputs give loss {pairs} * ln {cfg.dino_out} = {pairs * math.log(cfg.dino_out):.2f}")
    start = time.time()
    for step in range(args.steps):
        loss, _ = method.loss(module, batch, torch.Generator().manual_seed(step), cfg, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(module, step / args.steps)
        if step % args.every == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}", flush=True)
    print(f"{args.steps} steps in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
