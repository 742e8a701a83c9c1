"""The stage loop: pretraining (IDMM or another method) then fine-tuning stages, with exact resume.

Reproducibility: every source of randomness is re-seeded from ``(seed, stage, epoch, rank)`` at the
start of each epoch (the epoch's permutation, the augmentation generator, torch's global RNG used
by drop-path), and a checkpoint taken mid-epoch also stores the RNG states and the loss
accumulators. A run interrupted at any step and resumed therefore replays exactly the same
batches and augmentations, and on CPU ends with the same final metrics as an uninterrupted run.

Deviations from the authors' release, all deliberate: bf16 autocast on CUDA (the release is fp32);
crops made in batches on tensors (bilinear ``roi_align``) rather than per PIL image (bicubic in
fine-tuning); the cosine schedule without the release's bracket bug.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from idmm_tui.data.registry import load_configured
from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.engine.batches import ImageBank, build_bank, eval_storage_size, train_storage_size
from idmm_tui.engine.distributed import Placement, all_reduce_sum
from idmm_tui.engine.evaluate import KNN_CROP_PCT, knn_accuracy, top1_accuracy
from idmm_tui.engine.events import NullReporter, Reporter, RunInterrupted, StopRequest
from idmm_tui.engine.knn import extract_features
from idmm_tui.engine.optim import make_optimizer
from idmm_tui.engine.sampling import epoch_order, rank_batches, steps_per_epoch
from idmm_tui.engine.schedule import lr_at
from idmm_tui.engine.seeding import derive_seed
from idmm_tui.engine.views import crop_groups
from idmm_tui.errors import CheckpointError, TrainingError, UsageError
from idmm_tui.methods.base import Batch, Objective, get_method, unwrap
from idmm_tui.methods.finetune import FINETUNE
from idmm_tui.models.registry import create_backbone, load_backbone_state
from idmm_tui.recipe import Recipe
from idmm_tui.runs.store import LAST, RunDir, now_iso, process_identity
from idmm_tui.runs.summary import final_test_acc, update_summary, with_stage_done
from idmm_tui.stages import Stage, plan_stages
from idmm_tui.tracking.core import NullTracker


@dataclass
class Accumulators:
    """Loss/throughput sums of the current epoch and log window (checkpointed for exact resume)."""

    epoch_loss: float = 0.0
    epoch_steps: int = 0
    epoch_images: int = 0
    epoch_time: float = 0.0
    window_loss: float = 0.0
    window_steps: int = 0
    window_images: int = 0
    window_time: float = 0.0

    def add(self, loss: float, images: int, seconds: float) -> None:
        self.epoch_loss += loss
        self.window_loss += loss
        self.epoch_steps += 1
        self.window_steps += 1
        self.epoch_images += images
        self.window_images += images
        self.epoch_time += seconds
        self.window_time += seconds

    def reset_window(self) -> None:
        self.window_loss, self.window_steps, self.window_images, self.window_time = 0.0, 0, 0, 0.0


class PendingLosses:
    """Step losses not yet read by the host: on a GPU, reading a loss each step would stall the
    device, so they stay device tensors until logging time and are then read in one transfer."""

    def __init__(self) -> None:
        self._steps: list[tuple[torch.Tensor, int, float]] = []

    def add(self, loss: torch.Tensor, images: int, seconds: float) -> None:
        self._steps.append((loss, images, seconds))

    def fold_into(self, acc: Accumulators, stage: str, global_step: int) -> float:
        """Add the pending steps to ``acc`` in order (the same sums as step by step); the last loss."""
        if not self._steps:
            return float("nan")
        values = torch.stack([loss.float() for loss, _, _ in self._steps]).tolist()
        first = global_step - len(values) + 1
        for i, (value, (_, images, seconds)) in enumerate(zip(values, self._steps, strict=True)):
            if not math.isfinite(value):
                raise TrainingError(
                    f"{stage}: loss became {value} at step {first + i}; lower the learning rate or check the data"
                )
            acc.add(value, images, seconds)
        self._steps.clear()
        return values[-1]


@dataclass
class Position:
    """Where training stands: a stage, an epoch in it, batches done in that epoch."""

    stage_index: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0  # optimiser steps done in this stage
    acc: Accumulators = field(default_factory=Accumulators)


class Trainer:
    """Runs (or resumes) all stages of one run directory."""

    def __init__(
        self,
        run: RunDir,
        recipe: Recipe,
        place: Placement,
        reporter: Reporter | None = None,
        stop: StopRequest | None = None,
        init_weights: Callable[[], dict[str, torch.Tensor]] | None = None,
        tracker: Any = None,
        launch_info: dict[str, Any] | None = None,
    ):
        self.run, self.recipe, self.place = run, recipe, place
        self.reporter = reporter or NullReporter()
        self.tracker = tracker or NullTracker()  # TensorBoard / MLflow / W&B mirrors (rank 0; never blocks)
        self.stop = stop or StopRequest()
        self.stages = plan_stages(recipe)
        self.init_weights = init_weights
        self.amp = recipe.amp == "bf16" or (recipe.amp == "auto" and place.device.type == "cuda")
        self._banks: dict[tuple[str, int], ImageBank] = {}
        self._splits: dict[str, Any] = {}
        self._last_ckpt_time = time.monotonic()
        self._session_start = time.monotonic()
        self._elapsed_before = 0.0
        self.launch_info = dict(launch_info or {})  # how the processes were launched (written with the pid)

    # -- bookkeeping --------------------------------------------------------------------------

    def log(self, text: str) -> None:
        if self.place.is_main:
            self.run.append_log(text)
        self.reporter.message(text)

    def wall_time(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._session_start)

    def update_summary(self, **changes: Any) -> None:
        if self.place.is_main:
            update_summary(self.run, self.wall_time(), **changes)

    # -- data ---------------------------------------------------------------------------------

    def split(self, name: str):
        if name not in self._splits:
            data = self.recipe.data
            self._splits[name] = load_configured(data, name)
        return self._splits[name]

    def bank(self, split: str, side: int) -> ImageBank:
        """The split's images stored at ``side`` px (built once per split and size, then reused)."""
        key = (split, side)
        if key not in self._banks:
            data = self.recipe.data
            start = time.perf_counter()
            bank = build_bank(
                self.split(split), side, cache=data.cache, num_workers=data.num_workers, skip_bad=data.skip_bad_images
            )
            self._banks[key] = bank.place(self.place.device)
            self.log(f"{split} images: {bank.describe()}, prepared in {time.perf_counter() - start:.1f} s")
        return self._banks[key]

    def train_bank(self, stage: Stage) -> ImageBank:
        """Training images for ``stage``: stored large enough that its smallest crop is not upsampled."""
        cfg = stage.cfg
        scales = [s for _, s in crop_groups(cfg)] if stage.kind == "pretrain" else [cfg.crop_scale]
        return self.bank("train", train_storage_size(cfg.resolution, min(s[0] for s in scales)))

    def eval_bank(self, split: str, resolution: int, crop_pct: float) -> ImageBank:
        """Images for test-time views (resize + centre crop) at ``resolution``."""
        return self.bank(split, eval_storage_size(resolution, crop_pct))

    # -- model --------------------------------------------------------------------------------

    def objective(self, stage: Stage) -> Objective:
        """The stage's objective: the recipe's pretraining method, or fine-tuning."""
        if stage.kind == "pretrain":
            method = get_method(self.recipe.pretrain.method)
            assert method is not None  # plan_stages plans no pretraining stage for "none"
            return method
        return FINETUNE

    def build_module(self, stage: Stage, objective: Objective, num_outputs: int) -> nn.Module:
        """The stage's module on the training device (its backbone compiled when the recipe asks)."""
        torch.manual_seed(derive_seed(self.recipe.seed, "init", stage.name))
        backbone = create_backbone(
            self.recipe.model.backbone, img_size=stage.cfg.resolution, drop_path_rate=self.recipe.model.drop_path
        )
        module = objective.build(backbone, int(backbone.num_features), num_outputs, stage.cfg).to(self.place.device)
        if self.recipe.compile:  # in place (nn.Module.compile): state_dict keys and checkpoints unchanged
            module.backbone.compile()
        return module

    def initial_weights(self, stage: Stage, module: nn.Module) -> str:
        """Load the stage's starting weights: the previous stage's, or the recipe's ``init``."""
        prev = self.stages[stage.index - 1] if stage.index > 0 else None
        if prev is not None:
            tensors, _ = ckpt.load_checkpoint(self.run.checkpoint(prev.name))  # sha256-verified
            origin = f"stage {prev.name}"
        elif self.init_weights is not None:
            tensors = self.init_weights()
            origin = f"init {self.recipe.init}"
        else:
            return "random init"
        backbone = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
        load_backbone_state(module.backbone, backbone)
        head = {k.removeprefix("head."): v for k, v in tensors.items() if k.startswith("head.")}
        fits = (
            stage.kind == "finetune"
            and head.get("weight") is not None
            and (head["weight"].shape == module.head.weight.shape)
        )
        wanted = (prev is not None and prev.kind == "finetune") or (prev is None and self.recipe.init_head)
        if prev is None and self.recipe.init_head and not fits:
            shape = tuple(head["weight"].shape) if "weight" in head else "no head"
            raise UsageError(
                f"init_head = true, but {self.recipe.init} has {shape} where stage {stage.name} needs a "
                f"{tuple(module.head.weight.shape)} classifier head; set init_head = false to start a new head"
            )
        keep_head = fits and wanted
        if keep_head:
            module.head.load_state_dict(head)
            origin += " (with its classifier head)"
        return origin

    # -- main loop ----------------------------------------------------------------------------

    def fit(self, resume: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run every remaining stage; returns the final summary."""
        pos = Position()
        if resume is not None:
            pos = Position(
                stage_index=resume["stage_index"],
                epoch=resume["epoch"],
                step_in_epoch=resume["step_in_epoch"],
                global_step=resume["global_step"],
                acc=Accumulators(**resume["accumulators"]),
            )
            self._elapsed_before = float(resume.get("wall_time_s", 0.0))
        self.update_summary(status="running", **process_identity(), **self.launch_info)
        for stage in self.stages[pos.stage_index :]:
            resuming_here = resume is not None and stage.index == pos.stage_index and not resume.get("stage_done")
            self.run_stage(stage, pos if resuming_here else Position(stage_index=stage.index))
        return self.finish()

    def run_stage(self, stage: Stage, pos: Position) -> None:
        cfg = stage.cfg
        train = self.train_bank(stage)
        test = self.eval_bank("test", cfg.resolution, cfg.eval_crop_pct) if stage.kind == "finetune" else None
        n_train = len(train)
        world = self.place.world_size
        batch = min(cfg.batch_size, n_train)
        sampler = getattr(cfg, "sampler", "epoch")
        batch -= batch % (math.lcm(world, cfg.revisits) if sampler != "epoch" else world)
        if batch == 0 and sampler != "epoch":
            raise UsageError(
                f"batch_size {cfg.batch_size} holds no multiple of revisits {cfg.revisits} and {world} process(es):"
                " raise pretrain.batch_size or lower pretrain.revisits"
            )
        if batch < world:
            raise UsageError(f"batch_size {cfg.batch_size} is smaller than the number of processes ({world})")
        steps = steps_per_epoch(n_train, batch, world)  # every image, every epoch (last batch smaller)
        total_steps = steps * cfg.epochs
        warmup_steps = int(round(cfg.warmup_epochs * steps))

        objective = self.objective(stage)
        num_outputs = n_train if stage.kind == "pretrain" else len(train.classes)
        module = self.build_module(stage, objective, num_outputs)
        gen = torch.Generator()
        resumed = pos.global_step > 0 or pos.epoch > 0 or pos.step_in_epoch > 0
        optimizer = make_optimizer(module, cfg)
        if resumed:
            tensors, _ = ckpt.load_checkpoint(self.run.checkpoint(LAST))
            model_state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
            module.load_state_dict(model_state)
            ckpt.load_optimizer_tensors(optimizer, {k: v.to(self.place.device) for k, v in tensors.items()})
            ckpt.restore_rng(_rank_rng(tensors, self.place.rank), {"aug": gen})
            self.log(f"{stage.name}: resumed at epoch {pos.epoch + 1}, step {pos.global_step}/{total_steps}")
        else:
            origin = self.initial_weights(stage, module)
            order_note = f", {sampler} sampler x{cfg.revisits}" if sampler != "epoch" else ""
            at = f"{cfg.resolution}px, batch {batch}{order_note}"
            self.log(f"{stage.name}: {cfg.epochs} epochs at {at}, from {origin}")
            objective.start(module, cfg, lambda: self.train_features(stage, module))
            if stage.kind == "pretrain" and getattr(cfg, "knn_every", 0):
                # the monitor's starting point: how good the untrained (or init) features already are
                knn_start = round(self.knn_accuracy(stage, module), 4)
                self.log(f"{stage.name}: kNN accuracy before training {knn_start}")
                self.update_summary(knn_start={stage.name: knn_start})
        if self.place.distributed:
            ids = [self.place.device.index] if self.place.device.type == "cuda" else None
            if self.place.device.type == "cuda":
                # BatchNorm in the SimCLR/SupCon/MoCo v3 heads must see the global batch once negatives
                # are gathered across GPUs (else per-device statistics leak which pairs are positives,
                # the reason for SimCLR's global BN). Same parameters; no effect on LayerNorm ViTs.
                # SyncBatchNorm has no CPU kernel, so gloo runs keep per-process BN.
                module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            module = DistributedDataParallel(module, device_ids=ids)

        self.update_summary(
            current={
                "stage": stage.name,
                "stage_index": stage.index,
                "epoch": pos.epoch + 1,
                "epochs": cfg.epochs,
                "step": pos.global_step,
                "total_steps": total_steps,
            }
        )
        self.reporter.stage_started(stage, total_steps, pos.global_step)
        self.tracker.stage(
            "started", stage.name, {"epochs": cfg.epochs, "resolution": cfg.resolution, "total_steps": total_steps}
        )
        on_gpu = self.place.device.type == "cuda"
        last_loss = float("nan")  # shown by the progress bar until the host first reads a loss
        epoch = pos.epoch
        while epoch < cfg.epochs:
            fresh_epoch = pos.step_in_epoch == 0
            if fresh_epoch:
                gen.manual_seed(derive_seed(self.recipe.seed, stage.name, epoch, "aug", self.place.rank))
                torch.manual_seed(derive_seed(self.recipe.seed, stage.name, epoch, "torch", self.place.rank))
                pos.acc = Accumulators()
            order = epoch_order(
                sampler,
                n_train,
                batch,
                getattr(cfg, "revisits", 1),
                epoch,
                world,
                lambda c: derive_seed(self.recipe.seed, stage.name, c, "order"),
            )
            remaining = rank_batches(order, batch, world, self.place.rank)[pos.step_in_epoch :]
            module.train()
            pending = PendingLosses()
            if remaining:
                tick = time.perf_counter()
                for images, sizes, labels, ids in train.batches(remaining):
                    lr = lr_at(
                        pos.global_step,
                        total_steps=total_steps,
                        warmup_steps=warmup_steps,
                        peak=cfg.lr,
                        min_lr=cfg.min_lr,
                    )
                    for group in optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_mult", 1.0)
                    dev = self.place.device
                    b = Batch(images.to(dev, non_blocking=True), sizes.to(dev), labels.to(dev), ids.to(dev))
                    with self.autocast():
                        loss, seen = objective.loss(module, b, gen, cfg, epoch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                    objective.before_step(unwrap(module), cfg, epoch)
                    optimizer.step()
                    objective.after_step(unwrap(module), pos.global_step / max(1, total_steps))
                    now = time.perf_counter()
                    pending.add(loss.detach(), seen * world, now - tick)
                    tick = now
                    pos.global_step += 1
                    pos.step_in_epoch += 1
                    log_now = pos.global_step % self.recipe.log_every == 0 or pos.step_in_epoch == steps
                    if log_now or not on_gpu:  # on a GPU, the host reads the losses at logging time only
                        last_loss = pending.fold_into(pos.acc, stage.name, pos.global_step)
                    self.reporter.step(
                        stage,
                        epoch + 1,
                        pos.global_step,
                        last_loss,
                        pos.acc.window_images / max(pos.acc.window_time, 1e-9),
                    )
                    if log_now:
                        self.log_window(stage, epoch, pos, lr)
                    if self.stop_requested(at_sync_point=log_now):
                        pending.fold_into(pos.acc, stage.name, pos.global_step)
                        self.save_last(stage, module, optimizer, gen, pos)
                        raise RunInterrupted(self.stop.reason or "interrupted")
            self.end_epoch(stage, module, optimizer, gen, pos, test, epoch, total_steps, warmup_steps)
            epoch += 1
            pos.epoch, pos.step_in_epoch = epoch, 0
        self.finish_stage(stage, module, train.classes)

    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.place.device.type, dtype=torch.bfloat16)

    def stop_requested(self, *, at_sync_point: bool) -> bool:
        """Whether to stop after this step. One process: the signal's flag. Several: any rank's flag,
        agreed on at sync points only (logging steps, the end of an epoch), so that ranks stop together
        without a collective every step."""
        if not self.place.distributed:
            return self.stop.requested
        if not at_sync_point:
            return False
        return all_reduce_sum(self.place, [1.0 if self.stop.requested else 0.0])[0] > 0

    # -- logging, evaluation, checkpoints --------------------------------------------------------

    def metrics_record(
        self, kind: str, stage: Stage, epoch: int, pos: Position, sums: tuple[float, int, int, float], lr: float
    ) -> dict[str, Any]:
        """One metrics.jsonl line; ``sums`` = (loss sum, steps, images, seconds), the loss averaged over ranks."""
        loss_sum, steps = all_reduce_sum(self.place, [sums[0], float(sums[1])])
        return {
            "kind": kind,
            "stage": stage.name,
            "stage_index": stage.index,
            "epoch": epoch + 1,
            "step": pos.global_step,
            "loss": round(loss_sum / max(steps, 1.0), 6),
            "lr": lr,
            "images_per_s": round(sums[2] / max(sums[3], 1e-9), 2),
            "time": round(self.wall_time(), 3),
        }

    def log_window(self, stage: Stage, epoch: int, pos: Position, lr: float) -> None:
        acc = pos.acc
        sums = (acc.window_loss, acc.window_steps, acc.window_images, acc.window_time)
        record = self.metrics_record("train", stage, epoch, pos, sums, lr)
        if self.place.is_main:
            self.run.append_metrics(record)
            self.tracker.record(record)
        acc.reset_window()

    def train_features(self, stage: Stage, module: nn.Module) -> torch.Tensor:
        """L2-normalised backbone features of the training images (instance-id order), test-time view."""
        resolution = stage.cfg.resolution
        self.log(f"{stage.name}: one pass over the training images for their features")
        backbone = unwrap(module).backbone
        bank = self.train_bank(stage)
        return extract_features(
            backbone, bank, resolution, self.place.device, crop_pct=KNN_CROP_PCT, autocast=self.autocast()
        )

    def knn_accuracy(self, stage: Stage, module: nn.Module) -> float:
        """The kNN monitor: training images (the stage's bank) as neighbours of the test images."""
        resolution = stage.cfg.resolution
        test = self.eval_bank("test", resolution, KNN_CROP_PCT)
        return knn_accuracy(module, self.train_bank(stage), test, resolution, self.place, self.autocast)

    def end_epoch(self, stage, module, optimizer, gen, pos, test, epoch, total_steps, warmup_steps):
        cfg = stage.cfg
        acc = pos.acc
        lr = lr_at(
            max(pos.global_step - 1, 0),
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            peak=cfg.lr,
            min_lr=cfg.min_lr,
        )
        sums = (acc.epoch_loss, acc.epoch_steps, acc.epoch_images, acc.epoch_time)
        record = self.metrics_record("epoch", stage, epoch, pos, sums, lr)
        last = epoch + 1 == cfg.epochs
        if test is not None and ((epoch + 1) % self.recipe.eval_every == 0 or last):
            record["test_acc"] = round(top1_accuracy(module, test, cfg, self.place, self.autocast), 4)
        knn_every = getattr(cfg, "knn_every", 0)
        if stage.kind == "pretrain" and knn_every and ((epoch + 1) % knn_every == 0 or last):
            record["knn_acc"] = round(self.knn_accuracy(stage, module), 4)
        if self.place.is_main:
            self.run.append_metrics(record)
            self.tracker.record(record)
        self.reporter.epoch_done(stage, record)
        current = {
            "stage": stage.name,
            "stage_index": stage.index,
            "epoch": epoch + 1,
            "epochs": cfg.epochs,
            "step": pos.global_step,
            "total_steps": total_steps,
            "loss": record["loss"],
            "images_per_s": record["images_per_s"],
        }
        if "test_acc" in record:
            current["test_acc"] = record["test_acc"]
        self.update_summary(current=current)
        due = time.monotonic() - self._last_ckpt_time >= self.recipe.checkpoint_every_s
        due = all_reduce_sum(self.place, [1.0 if due else 0.0])[0] > 0  # every rank must agree
        if due and not last:
            nxt = Position(pos.stage_index, epoch + 1, 0, pos.global_step, Accumulators())
            self.save_last(stage, module, optimizer, gen, nxt)

    def save_last(self, stage: Stage, module, optimizer, gen, pos: Position, stage_done: bool = False) -> None:
        """The resumable checkpoint ``checkpoints/last.*`` (model, optimiser, RNG, position)."""
        tensors: dict[str, torch.Tensor] = {}
        if not stage_done:
            tensors.update({f"model.{k}": v for k, v in unwrap(module).state_dict().items()})
            tensors.update(ckpt.optimizer_tensors(optimizer))
        rng = ckpt.rng_tensors({"aug": gen} if gen is not None else {})
        gathered = _gather_rng(self.place, rng)
        if self.place.is_main:
            tensors.update(gathered)
            state = {
                "run": self.run.name,
                "stage": stage.name,
                "stage_index": pos.stage_index,
                "stage_done": stage_done,
                "epoch": pos.epoch,
                "step_in_epoch": pos.step_in_epoch,
                "global_step": pos.global_step,
                "accumulators": vars(pos.acc),
                "wall_time_s": round(self.wall_time(), 3),
                "world_size": self.place.world_size,
                "saved_at": now_iso(),
            }
            ckpt.save_checkpoint(self.run.checkpoint(LAST), tensors, state, versioned=True)
            if stage_done:
                self.log(f"{stage.name}: finished; weights in checkpoints/{stage.name}.safetensors")
            else:
                where = (
                    f"after epoch {pos.epoch}"
                    if pos.step_in_epoch == 0
                    else f"in epoch {pos.epoch + 1} (batch {pos.step_in_epoch})"
                )
                self.log(f"{stage.name}: checkpoint {where}, step {pos.global_step}")
        self._last_ckpt_time = time.monotonic()

    def finish_stage(self, stage: Stage, module: nn.Module, classes: list[str]) -> None:
        """Write the stage's final weights and record its final metrics."""
        metrics = [m for m in self.run.read_metrics() if m.get("stage") == stage.name and m.get("kind") == "epoch"]
        final = dict(metrics[-1]) if metrics else {}
        final = {k: final[k] for k in ("epoch", "step", "loss", "test_acc", "knn_acc", "images_per_s") if k in final}
        inner = unwrap(module)
        if self.place.is_main:
            state = inner.state_dict()
            if stage.kind == "pretrain":  # the instance head is meaningless downstream
                state = {k: v for k, v in state.items() if k.startswith("backbone.")}
            meta = {
                "stage": stage.name,
                "kind": stage.kind,
                "resolution": stage.cfg.resolution,
                "backbone": self.recipe.model.backbone,
                "num_classes": len(classes) if stage.kind == "finetune" else 0,
                "classes": classes if stage.kind == "finetune" else [],
                "metrics": final,
            }
            ckpt.save_checkpoint(self.run.checkpoint(stage.name), state, meta)
            self.update_summary(stages=with_stage_done(self.run.read_summary(), stage, final))
        done = Position(stage.index + 1)
        self.save_last(stage, module, None, None, done, stage_done=True)
        self.reporter.stage_done(stage, final)
        self.tracker.stage("completed", stage.name, final)

    def finish(self) -> dict[str, Any]:
        test_acc = final_test_acc(self.run.read_summary()) if self.place.is_main else None
        self.update_summary(
            status="completed", finished_at=now_iso(), test_acc=test_acc, current=None, pid=None, pid_start=None
        )
        self.log(f"run completed: test_acc={test_acc}")
        return self.run.read_summary() if self.place.is_main else {}


def _gather_rng(place: Placement, rng: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every rank's RNG states, keyed ``rank<k>.rng.*`` (single process: rank0 only)."""
    if not place.distributed:
        return {f"rank0.{k}": v for k, v in rng.items()}
    import torch.distributed as dist

    gathered: list[dict[str, torch.Tensor] | None] = [None] * place.world_size
    dist.all_gather_object(gathered, {k: v.cpu() for k, v in rng.items()})
    return {f"rank{r}.{k}": v for r, states in enumerate(gathered) for k, v in (states or {}).items()}


def _rank_rng(tensors: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    prefix = f"rank{rank}."
    states = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    if not states:
        raise CheckpointError(
            f"the checkpoint holds no RNG state for rank {rank}: it was written with another number of processes"
        )
    return states
