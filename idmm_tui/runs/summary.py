"""``summary.json``: what a run directory says about its run (status, plan, per-stage results).

Written only by the training process (rank 0): created by :func:`new_summary` when the run starts,
then read-modified-written by :func:`update_summary` (atomic writes; viewers never lock). Keys:
``format``, ``name``, ``status`` (running / completed / failed / interrupted), ``started_at``,
``updated_at``, ``finished_at``, ``idmm_version``, ``recipe_sha256``, ``backbone``, ``dataset``,
``method``, ``seed``, ``init``, ``world_size``, ``nodes``, ``hosts``, ``launch`` (how the processes were
launched: see :mod:`idmm_tui.runs.launcher`), ``pid``, ``host``, ``plan`` (stage name, kind, epochs,
resolution), ``current`` (the stage and epoch training is in), ``stages`` (final metrics of each
finished stage), ``knn_start``, ``test_acc`` (the last fine-tuning stage's), ``wall_time_s``, ``error``
and, when set, ``group``, ``lineage``, ``evals``, ``recipe_source``, ``overrides``.
"""

from __future__ import annotations

from typing import Any

from idmm_tui import __version__
from idmm_tui.recipe import Recipe
from idmm_tui.runs.store import RUN_MARKER, RunDir, now_iso
from idmm_tui.stages import Stage, plan_record


def new_summary(run: RunDir, recipe: Recipe, recipe_sha256: str, stages: list[Stage], world_size: int) -> dict:
    """The summary.json written when a run starts."""
    return {
        "format": RUN_MARKER,
        "name": run.name,
        "status": "running",
        "started_at": now_iso(),
        "idmm_version": __version__,
        "recipe_sha256": recipe_sha256,
        "backbone": recipe.model.backbone,
        "dataset": recipe.data.dataset,
        "method": recipe.pretrain.method,
        "seed": recipe.seed,
        "init": recipe.init,
        "world_size": world_size,
        "plan": plan_record(stages),
        "stages": {},
        "test_acc": None,
    }


def update_summary(run: RunDir, wall_time_s: float, **changes: Any) -> dict[str, Any]:
    """Apply ``changes`` to the run's summary, stamping the wall time and ``updated_at``; returns it."""
    summary = run.read_summary()
    summary.update(changes)
    summary["wall_time_s"] = round(wall_time_s, 2)
    summary["updated_at"] = now_iso()
    run.write_summary(summary)
    return summary


def with_stage_done(summary: dict[str, Any], stage: Stage, final: dict[str, Any]) -> dict[str, Any]:
    """The ``stages`` table with ``stage`` recorded as completed with its final metrics."""
    stages = dict(summary.get("stages") or {})
    stages[stage.name] = {
        "kind": stage.kind,
        "resolution": stage.cfg.resolution,
        "epochs": stage.cfg.epochs,
        "status": "completed",
        **final,
    }
    return stages


def final_test_acc(summary: dict[str, Any]) -> float | None:
    """The test accuracy of the run: the last finished fine-tuning stage's (None without one)."""
    finals = [s for s in (summary.get("stages") or {}).values() if isinstance(s, dict) and s.get("kind") == "finetune"]
    return finals[-1].get("test_acc") if finals else None
