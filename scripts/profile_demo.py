"""Where a recipe's CPU time goes: image preparation, augmentation, forward, backward, optimiser, kNN monitor.

Runs ``--steps`` real training steps of each stage of a recipe (default: the demo) with the trainer's own
pieces, each part inside a ``torch.profiler.record_function`` block, and prints milliseconds per step for
every part, plus one kNN-monitor pass and one test evaluation, and what a whole run of the recipe
therefore costs (per-step times × steps, plus the evaluations it schedules).

    python scripts/profile_demo.py                         # recipes/demo.toml
    python scripts/profile_demo.py recipes/demo.toml --set pretrain.batch_size=128 --steps 12
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from idmm_tui.engine.distributed import Placement
from idmm_tui.engine.evaluate import top1_accuracy
from idmm_tui.engine.optim import make_optimizer
from idmm_tui.engine.sampling import rank_batches, steps_per_epoch
from idmm_tui.engine.trainer import Trainer
from idmm_tui.launch import resolve_recipe
from idmm_tui.methods.base import Batch
from idmm_tui.runs.store import RunDir
from idmm_tui.stages import plan_stages

PARTS = ("augment+forward", "backward", "optimizer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", default="recipes/demo.toml")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    recipe = resolve_recipe(Path(args.recipe), args.sets)
    trainer = Trainer(RunDir(Path("/nonexistent")), recipe, Placement(torch.device("cpu")))
    trainer.log = lambda text: None  # no run directory: nothing is written
    print(f"{args.recipe} {' '.join(args.sets)}: threads {torch.get_num_threads()}")
    total = 0.0
    for stage in plan_stages(recipe):
        cfg = stage.cfg
        start = time.perf_counter()
        train = trainer.train_bank(stage)
        prep = time.perf_counter() - start
        objective = trainer.objective(stage)
        outputs = len(train) if stage.kind == "pretrain" else len(train.classes)
        module = trainer.build_module(stage, objective, outputs)
        optimizer = make_optimizer(module, cfg)
        gen = torch.Generator().manual_seed(0)
        batch = min(cfg.batch_size, len(train))
        chunks = rank_batches(torch.randperm(len(train)), batch, 1, 0)[: args.steps]
        times: dict[str, float] = defaultdict(float)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for images, sizes, labels, ids in train.batches(chunks):
                b = Batch(images, sizes, labels, ids)
                for part in PARTS:
                    tick = time.perf_counter()
                    with record_function(part):
                        if part == "augment+forward":
                            loss, _ = objective.loss(module, b, gen, cfg, 1)
                        elif part == "backward":
                            optimizer.zero_grad(set_to_none=True)
                            loss.backward()
                        else:
                            optimizer.step()
                    times[part] += time.perf_counter() - tick
        aug = sum(e.cpu_time_total for e in prof.key_averages() if e.key in AUG_OPS) / 1e3  # ms
        n = len(chunks)
        steps = steps_per_epoch(len(train), batch, 1) * cfg.epochs
        step_ms = {k: 1000 * v / n for k, v in times.items()}
        evals = 0.0
        if stage.kind == "pretrain" and getattr(cfg, "knn_every", 0):
            tick = time.perf_counter()
            trainer.knn_accuracy(stage, module)
            knn = time.perf_counter() - tick
            count = cfg.epochs // cfg.knn_every + 1  # + the starting point
            evals = knn * count
            extra = f"kNN monitor {knn:.1f} s x {count}"
        elif stage.kind == "finetune":
            test = trainer.eval_bank("test", cfg.resolution, cfg.eval_crop_pct)
            tick = time.perf_counter()
            top1_accuracy(module, test, cfg, trainer.place, trainer.autocast)
            ev = time.perf_counter() - tick
            count = -(-cfg.epochs // recipe.eval_every)
            evals = ev * count
            extra = f"test evaluation {ev:.1f} s x {count}"
        else:
            extra = ""
        run_s = prep + sum(step_ms.values()) / 1000 * steps + evals
        total += run_s
        print(
            f"{stage.name}: {steps} steps of {batch}; per step "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in step_ms.items())
            + f" (of which crops/augmentation ops {aug / n:.0f} ms); image preparation "
            f"{prep:.1f} s; {extra}; whole stage ~{run_s:.0f} s"
        )
    print(f"whole run ~{total:.0f} s")


AUG_OPS = {"torchvision::roi_align", "aten::grid_sampler_2d", "aten::conv2d"}

if __name__ == "__main__":
    main()
