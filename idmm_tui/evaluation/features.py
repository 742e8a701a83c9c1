"""A finished stage of a run as a frozen backbone, and its features of a dataset split.

The weights come from ``checkpoints/<stage>.safetensors`` through :func:`checkpoint.load_checkpoint`
(sha256-verified: a corrupt or truncated file is an error, never loaded); the backbone is rebuilt
from the registry at the stage's resolution without drop path, and the features are the ones the
kNN monitor uses (:func:`idmm_tui.engine.knn.extract_features`): L2-normalised pooled features of
each image's deterministic test-time view (resize + centre crop, as the fine-tuning evaluation does,
with the stage's ``eval_crop_pct``; 0.875 for a pretraining stage). Nothing is augmented.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from idmm_tui.data.registry import load_configured
from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.engine.batches import ImageBank, build_bank, eval_storage_size
from idmm_tui.engine.distributed import resolve_device
from idmm_tui.engine.knn import extract_features
from idmm_tui.errors import RecipeError, RunStateError, UsageError
from idmm_tui.models.registry import create_backbone, load_backbone_state
from idmm_tui.recipe import FinetuneConfig, Recipe, parse_saved_recipe
from idmm_tui.runs.store import RunDir, finished_stages
from idmm_tui.stages import plan_stages
from idmm_tui.zoo.export import timm_state_dict

#: Centre-crop ratio of a pretraining stage's features (fine-tuning stages use their ``eval_crop_pct``).
DEFAULT_CROP_PCT = float(FinetuneConfig.model_fields["eval_crop_pct"].default)

Progress = Callable[[str, int, int], None]  # (what, done, total)


def choose_stage(run: RunDir, summary: dict[str, Any], stage: str | None) -> str:
    """``stage`` when it finished; by default ``pretrain`` when the run has it, else its last finished stage."""
    done = finished_stages(summary)
    if not done:
        raise RunStateError(
            f"run {run.path} has no finished stage with weights (status "
            f"{summary.get('status')!r}); finish it first: idmm run --resume {run.path}"
        )
    if stage is None:
        return "pretrain" if "pretrain" in done else done[-1]
    if stage not in done:
        planned = [p.get("name") for p in summary.get("plan", [])]
        state = "has not finished (no weights yet)" if stage in planned else "is not a stage of this run"
        raise UsageError(f"--stage {stage!r} {state}; stages with weights: {', '.join(done)}")
    return stage


def run_recipe(run: RunDir) -> Recipe:
    """The run's resolved recipe, validated."""
    try:
        return parse_saved_recipe(run.recipe.read_text(encoding="utf-8"), str(run.recipe))
    except (OSError, RecipeError) as exc:
        raise RunStateError(f"{run.recipe} cannot be read ({exc})") from None


@dataclass
class FrozenStage:
    """One finished stage loaded for evaluation: its backbone in eval mode and how to view images."""

    run: RunDir
    stage: str
    kind: str
    backbone_name: str
    resolution: int
    crop_pct: float
    recipe: Recipe
    backbone: nn.Module
    device: torch.device
    amp: bool
    weights_sha256: str

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.num_features)

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)


def load_stage(run: RunDir, stage: str | None = None, device: str = "auto") -> FrozenStage:
    """The backbone of ``run``'s finished ``stage`` (see :func:`choose_stage`), on ``device``."""
    summary = run.read_summary()
    name = choose_stage(run, summary, stage)
    recipe = run_recipe(run)
    tensors, meta = ckpt.load_checkpoint(run.checkpoint(name))  # sha256-verified
    planned = {s.name: s for s in plan_stages(recipe)}.get(name)
    kind = str(meta.get("kind") or (planned.kind if planned else "pretrain"))
    resolution = int(meta.get("resolution") or (planned.cfg.resolution if planned else 0))
    if resolution <= 0:
        raise RunStateError(f"{run.checkpoint(name)}.json does not say at which resolution stage {name} trained")
    crop_pct = float(getattr(planned.cfg, "eval_crop_pct", DEFAULT_CROP_PCT)) if planned else DEFAULT_CROP_PCT
    backbone_name = str(meta.get("backbone") or summary.get("backbone") or recipe.model.backbone)
    where = resolve_device(device)
    backbone = create_backbone(backbone_name, img_size=resolution, drop_path_rate=0.0)
    load_backbone_state(backbone, timm_state_dict(tensors, with_head=False))
    backbone.to(where).eval()
    amp = recipe.amp == "bf16" or (recipe.amp == "auto" and where.type == "cuda")
    return FrozenStage(
        run,
        name,
        kind,
        backbone_name,
        resolution,
        crop_pct,
        recipe,
        backbone,
        where,
        amp,
        str(meta.get("sha256") or ""),
    )


class _Subset:
    """The part of an :class:`ImageBank` that :func:`extract_features` reads, restricted to ``indices``.

    Counts the images it hands out, for a progress display.
    """

    def __init__(self, bank: ImageBank, indices: torch.Tensor, on_batch: Callable[[int], None] | None):
        self.bank, self.indices, self.on_batch = bank, indices, on_batch

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def batches(self, chunks: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, ...]]:
        for batch in self.bank.batches([self.indices[c] for c in chunks]):
            yield batch
            if self.on_batch:
                self.on_batch(int(batch[0].shape[0]))


@dataclass
class SplitFeatures:
    """Features of (part of) a split, with the labels and class names they go with."""

    split: str
    features: torch.Tensor  # float32 [N, D], L2-normalised, on the CPU
    labels: torch.Tensor  # int64 [N]
    classes: list[str]
    indices: torch.Tensor  # positions in the split


def split_bank(frozen: FrozenStage, split: str, on_progress: Progress | None = None) -> tuple[ImageBank, list[str]]:
    """The split as an image bank at the stage's resolution (decoded into memory when it fits)."""
    data = frozen.recipe.data
    images = load_configured(data, split)  # the run's own label space (``data.classes`` subsets included)
    report = (lambda done, total: on_progress(f"decoding {split}", done, total)) if on_progress else None
    side = eval_storage_size(frozen.resolution, frozen.crop_pct)
    bank = build_bank(
        images, side, cache=data.cache, num_workers=data.num_workers, on_progress=report, skip_bad=data.skip_bad_images
    )
    return bank, list(bank.classes)


def stage_features(
    frozen: FrozenStage,
    split: str,
    *,
    select: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    on_progress: Progress | None = None,
) -> SplitFeatures:
    """Features of ``split`` (or of the positions ``select(labels)`` returns) through the frozen backbone."""
    bank, classes = split_bank(frozen, split, on_progress)
    indices = select(bank.labels) if select is not None else torch.arange(len(bank))
    done = [0]

    def counted(n: int) -> None:
        done[0] += n
        if on_progress:
            on_progress(f"features {split}", done[0], len(indices))

    feats = extract_features(
        frozen.backbone,
        _Subset(bank, indices, counted),  # type: ignore[arg-type]  (what extract_features reads of a bank)
        frozen.resolution,
        frozen.device,
        crop_pct=frozen.crop_pct,
        batch_size=batch_size,
        autocast=frozen.autocast(),
    )
    return SplitFeatures(split, feats, bank.labels[indices].clone(), classes, indices)


def sample_indices(labels: torch.Tensor, *, max_points: int | None, max_classes: int | None, seed: int) -> torch.Tensor:
    """Positions of at most ``max_points`` items (a seeded uniform draw, kept in split order), of the
    first ``max_classes`` classes only when given."""
    keep = torch.arange(labels.shape[0])
    if max_classes is not None:
        keep = keep[labels[keep] < max_classes]
    if max_points is not None and keep.shape[0] > max_points:
        gen = torch.Generator().manual_seed(seed)
        keep = keep[torch.randperm(keep.shape[0], generator=gen)[:max_points]].sort().values
    return keep
