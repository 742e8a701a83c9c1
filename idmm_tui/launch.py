"""Starting and resuming runs: everything between a recipe on disk and the :class:`Trainer`.

Bad input is caught here, *before* anything is created: unknown dataset / backbone / method names,
resolutions the backbone cannot take, a dataset missing on disk, an existing run directory.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from idmm_tui.data.registry import get_dataset_spec, load_configured
from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.engine.distributed import Placement
from idmm_tui.engine.events import Reporter, RunInterrupted, StopRequest
from idmm_tui.engine.trainer import Trainer
from idmm_tui.errors import RecipeError, RunStateError, UsageError
from idmm_tui.models.registry import check_resolution, get_backbone_spec
from idmm_tui.recipe import Recipe, fill_defaults, load_recipe, parse_saved_recipe, save_recipe, to_toml
from idmm_tui.runs.store import LAST, RunDir, create_run_dir, effective_status, open_run_dir
from idmm_tui.runs.summary import new_summary
from idmm_tui.stages import plan_stages, recipe_key
from idmm_tui.tracking import open_tracker
from idmm_tui.transfer import init_lineage, init_loader

#: idmm versions whose mid-stage checkpoints this version cannot continue exactly (another steps-per-epoch).
PROTOCOL_BEFORE = ("0.1.0",)


def resolve_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load + validate a recipe, check every registry name in it, fill backbone defaults."""
    return resolve(load_recipe(path, overrides), str(path))


def resolve(recipe: Recipe, source: str) -> Recipe:
    """A validated recipe completed and checked: backbone defaults filled in, every registry name known,
    at least one stage, every stage's resolution one the backbone can take."""
    spec = get_backbone_spec(recipe.model.backbone)
    get_dataset_spec(recipe.data.dataset)
    recipe = fill_defaults(recipe, spec.lr, spec.warmup_epochs)
    stages = plan_stages(recipe)
    if not stages:
        raise RecipeError(f"{source}: nothing to run (no pretraining and no fine-tuning stage with epochs > 0)")
    for stage in stages:
        key = recipe_key(recipe, stage, "resolution")
        try:
            check_resolution(recipe.model.backbone, stage.cfg.resolution)
        except UsageError as exc:
            detail = str(exc).split(": ", 1)[-1]
            raise RecipeError(
                f"{source}: {key} = {stage.cfg.resolution} does not work with backbone "
                f"{recipe.model.backbone!r}: {detail}"
            ) from None
    return recipe


def default_run_name(recipe: Recipe, recipe_path: Path, runs_dir: Path) -> str:
    stem = recipe.name or recipe_path.stem
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, k = base, 2
    while (runs_dir / name).exists():
        name, k = f"{base}-{k}", k + 1
    return name


def recipe_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_run(
    recipe_path: str | Path,
    overrides: list[str] | tuple[str, ...],
    runs_dir: Path,
    name: str | None,
    *,
    world_size: int = 1,
    group: str | None = None,
) -> tuple[RunDir, Recipe]:
    """Validate everything, then create the run directory with its resolved recipe and summary."""
    recipe_path = Path(recipe_path)
    recipe = resolve_recipe(recipe_path, overrides)
    if recipe.init:
        init_loader(recipe.init)  # fail now on a bad init reference
    # the dataset must be readable (or downloadable) before a directory is created
    load_configured(recipe.data, "train")
    needs_test = any(s.kind == "finetune" for s in plan_stages(recipe)) or recipe.pretrain.knn_every > 0
    if needs_test:
        load_configured(recipe.data, "test")
    run = create_run_dir(runs_dir, name or default_run_name(recipe, recipe_path, runs_dir))
    save_recipe(recipe, run.recipe)
    summary = new_summary(run, recipe, recipe_digest(to_toml(recipe)), plan_stages(recipe), world_size)
    summary["recipe_source"] = str(recipe_path)
    summary["overrides"] = list(overrides)
    summary["lineage"] = init_lineage(recipe.init)  # the parent as it is now (zoo name, repo, sha256)
    if group:
        summary["group"] = group
    run.write_summary(summary)
    run.append_log(f"created from {recipe_path} {' '.join('--set ' + o for o in overrides)}".rstrip())
    return run, recipe


def open_for_resume(path: str | Path) -> tuple[RunDir, Recipe, dict[str, Any] | None]:
    """The run, its recipe and its last checkpoint state; refuses finished, live or foreign runs."""
    run = open_run_dir(Path(path).expanduser())
    summary = run.read_summary()
    status = summary.get("status")
    if status == "completed":
        raise RunStateError(f"run {run.path} already completed (test_acc={summary.get('test_acc')}); nothing to resume")
    if status == "running" and effective_status(summary) == "running" and summary.get("pid") != os.getpid():
        raise RunStateError(f"run {run.path} is still running (pid {summary.get('pid')}); stop it first")
    text = run.recipe.read_text(encoding="utf-8")
    modified = bool(summary.get("recipe_sha256")) and recipe_digest(text) != summary["recipe_sha256"]
    try:
        recipe = parse_saved_recipe(text, str(run.recipe))
    except UsageError as exc:
        what = "was modified and is no longer valid" if modified else "is not a valid recipe"
        raise RunStateError(f"{run.recipe} {what}: {exc}") from None
    if modified and recipe_digest(to_toml(recipe)) != summary["recipe_sha256"]:
        # formatting-only differences are tolerated: the validated content is compared
        raise RunStateError(
            f"{run.recipe} was modified after the run started; resuming would not reproduce it. "
            "Start a new run from the edited recipe instead"
        )
    state = None
    if run.checkpoint(LAST).with_suffix(".json").exists():
        state = ckpt.read_state(run.checkpoint(LAST))
        made_by = summary.get("idmm_version")
        if made_by in PROTOCOL_BEFORE and not state.get("stage_done"):
            raise RunStateError(
                f"{run.path} stopped in the middle of stage {state.get('stage')!r} under idmm {made_by}, whose "
                "training protocol differs (it dropped the last partial batch of every epoch): resuming would not "
                "reproduce it. Start the run again with this version (its recipe.toml still works)"
            )
        ckpt.load_checkpoint(run.checkpoint(LAST))  # verify the tensors now, before touching anything
    return run, recipe, state


def execute(
    run: RunDir,
    recipe: Recipe,
    place: Placement,
    *,
    reporter: Reporter | None = None,
    stop: StopRequest | None = None,
    resume_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) ``run``; marks it failed/interrupted when training stops early."""
    if resume_state is not None and place.is_main:
        position = (resume_state["stage_index"], resume_state["global_step"])
        if resume_state.get("stage_done"):
            position = (resume_state["stage_index"] - 1, 1 << 62)
        run.truncate_metrics(*position)
    elif resume_state is None and place.is_main and run.metrics.exists():
        run.metrics.unlink()  # resumed before the first checkpoint: start over cleanly
    if resume_state is not None and resume_state.get("world_size", 1) != place.world_size:
        raise RunStateError(
            f"{run.path} was checkpointed with {resume_state.get('world_size')} processes; "
            f"resume it with the same number (now {place.world_size})"
        )
    loader = init_loader(recipe.init) if recipe.init else None
    tracker = open_tracker(run, recipe, warn=lambda text: _warn(run, reporter, text), enabled=place.is_main)
    trainer = Trainer(run, recipe, place, reporter, stop, init_weights=loader, tracker=tracker)
    tracker.start(run.read_summary() if place.is_main else {})
    try:
        summary = trainer.fit(resume_state)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, (RunInterrupted, KeyboardInterrupt)) else "failed"
        message = str(exc) or type(exc).__name__
        trainer.update_summary(status=status, error=None if status == "interrupted" else message, pid=None)
        if place.is_main:
            run.append_log(f"run {status}: {message}")
            if isinstance(exc, KeyboardInterrupt):  # a forced stop: do not keep the user waiting
                tracker.flush_timeout_s = min(getattr(tracker, "flush_timeout_s", 0.0), 3.0)
            tracker.finish(run.read_summary())
        raise
    tracker.finish(summary)
    return summary


def _warn(run: RunDir, reporter: Reporter | None, text: str) -> None:
    """A tracking warning: in run.log and on the progress display (never an error)."""
    run.append_log(text)
    if reporter is not None:
        reporter.message(text)
