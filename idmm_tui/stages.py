"""Stage planning: which stages a recipe runs, in order, and their names.

Used by the trainer, the launcher's checks, the evaluation tools and the dashboard's launch form; it
imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from idmm_tui.recipe import NO_PRETRAINING, FinetuneConfig, PretrainConfig, Recipe

StageKind = Literal["pretrain", "finetune"]


@dataclass(frozen=True)
class Stage:
    """One stage of a run."""

    index: int
    name: str
    kind: StageKind
    cfg: PretrainConfig | FinetuneConfig


def plan_stages(recipe: Recipe) -> list[Stage]:
    """The stages a recipe runs: pretraining (unless ``method = "none"`` or 0 epochs), then fine-tuning.

    Fine-tuning stages are named ``finetune_<resolution>`` (``_2``, ``_3``… when a resolution repeats);
    stages with 0 epochs are skipped.
    """
    stages: list[Stage] = []
    if recipe.pretrain.method != NO_PRETRAINING and recipe.pretrain.epochs > 0:
        stages.append(Stage(0, "pretrain", "pretrain", recipe.pretrain))
    seen: dict[str, int] = {}
    for ft in recipe.finetune:
        if ft.epochs == 0:
            continue
        base = f"finetune_{ft.resolution}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}_{seen[base]}"
        stages.append(Stage(len(stages), name, "finetune", ft))
    return stages


def plan_record(stages: list[Stage]) -> list[dict]:
    """The ``plan`` a run's summary records: name, kind, epochs and resolution of each stage."""
    return [{"name": s.name, "kind": s.kind, "epochs": s.cfg.epochs, "resolution": s.cfg.resolution} for s in stages]


def recipe_key(recipe: Recipe, stage: Stage, key: str) -> str:
    """The dotted recipe key of a stage setting: ``pretrain.resolution``, ``finetune.1.epochs``…"""
    if stage.kind == "pretrain":
        return f"pretrain.{key}"
    index = next(i for i, ft in enumerate(recipe.finetune) if ft is stage.cfg)
    return f"finetune.{index}.{key}"
