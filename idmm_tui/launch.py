"""Starting and resuming runs: everything between a recipe on disk and the :class:`Trainer`.

Bad input is caught here, *before* anything is created: unknown dataset / backbone / method names,
resolutions the backbone cannot take, a dataset missing on disk, an existing run directory.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

from idmm_tui.data.registry import get_dataset_spec, load_configured
from idmm_tui.engine import checkpoint as ckpt
from idmm_tui.engine.batches import bad_images_error, describe_bad_images, preflight_images
from idmm_tui.engine.distributed import Placement
from idmm_tui.engine.events import Reporter, RunInterrupted, StopRequest
from idmm_tui.engine.trainer import Trainer
from idmm_tui.errors import (
    CheckpointError,
    CorruptFileError,
    RecipeError,
    RunStateError,
    UsageError,
    as_user_error,
    filesystem_error,
    not_utf8,
)
from idmm_tui.fsutil import read_text_file
from idmm_tui.models.registry import check_resolution, get_backbone_spec
from idmm_tui.recipe import Recipe, fill_defaults, load_recipe, parse_saved_recipe, save_recipe, to_toml
from idmm_tui.runs.store import (
    LAST,
    RunDir,
    check_run_name,
    check_runs_dir,
    create_run_dir,
    effective_status,
    open_run_dir,
    remove_stale_temps,
    run_name_from,
)
from idmm_tui.runs.summary import new_summary
from idmm_tui.stages import plan_stages, recipe_key
from idmm_tui.textsafe import redact_text
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
    stem = run_name_from(recipe.name or recipe_path.stem)
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
    if name is not None:
        check_run_name(name)
    check_runs_dir(runs_dir)
    if recipe.init:
        init_loader(recipe.init)  # fail now on a bad init reference (or weights that fail their sha256)
    # the dataset must be readable (or downloadable), its images decodable, before a directory is created
    notes = []
    needs_test = any(s.kind == "finetune" for s in plan_stages(recipe)) or recipe.pretrain.knn_every > 0
    for split in ("train", "test") if needs_test else ("train",):
        images = load_configured(recipe.data, split)
        bad = preflight_images(images, split)
        if bad and not recipe.data.skip_bad_images:
            raise bad_images_error(bad, split)
        if bad:
            notes.append(f"{split}: {describe_bad_images(bad)}; skipped (data.skip_bad_images = true)")
    run = create_run_dir(runs_dir, name or default_run_name(recipe, recipe_path, runs_dir))
    try:
        save_recipe(recipe, run.recipe)
        summary = new_summary(run, recipe, recipe_digest(to_toml(recipe)), plan_stages(recipe), world_size)
        summary["recipe_source"] = str(recipe_path)
        summary["overrides"] = list(overrides)
        summary["lineage"] = init_lineage(recipe.init)  # the parent as it is now (zoo name, repo, sha256)
        if group:
            summary["group"] = group
        run.write_summary(summary)
        run.append_log(f"created from {recipe_path} {' '.join('--set ' + o for o in overrides)}".rstrip())
        for note in notes:
            run.append_log(note)
    except BaseException as exc:  # a full disk, say: leave no half-made run directory behind
        shutil.rmtree(run.path, ignore_errors=True)
        if isinstance(exc, OSError):
            raise filesystem_error(exc, f"cannot write run directory {run.path}") from None
        raise
    return run, recipe


def open_for_resume(path: str | Path) -> tuple[RunDir, Recipe, dict[str, Any] | None]:
    """The run, its recipe and its last checkpoint state; refuses finished, live or foreign runs."""
    run = open_run_dir(Path(path).expanduser())
    summary = run.load_summary()
    status = summary.get("status")
    if status == "completed":
        raise RunStateError(f"run {run.path} already completed (test_acc={summary.get('test_acc')}); nothing to resume")
    if status == "running" and effective_status(summary) == "running" and summary.get("pid") != os.getpid():
        raise RunStateError(f"run {run.path} is still running (pid {summary.get('pid')}); stop it first")
    try:
        text = read_text_file(run.recipe)
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{run.recipe} is {not_utf8(exc)}; it cannot be the recipe this run saved") from None
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
    for folder in (run.path, run.checkpoints, run.path / "eval"):
        remove_stale_temps(folder)  # left by writes that a kill -9 interrupted; nobody else writes here now
    state = None
    if run.checkpoint(LAST).with_suffix(".json").exists():
        state = ckpt.read_resume_state(run.checkpoint(LAST))
        check_resume_position(run, recipe, state)
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
    launch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train (or continue training) ``run``; marks it failed/interrupted when training stops early.

    ``launch``: how the processes were started (``engine.distributed.launch_record``), recorded in the
    summary when training starts, so that a resume can be launched the same way."""
    if resume_state is not None and place.is_main:
        position = (resume_state["stage_index"], resume_state["global_step"])
        if resume_state.get("stage_done"):
            position = (resume_state["stage_index"] - 1, 1 << 62)
        run.truncate_metrics(*position)
    elif resume_state is None and place.is_main and run.metrics.exists():
        run.metrics.unlink()  # resumed before the first checkpoint: start over cleanly
    if resume_state is not None and resume_state.get("world_size", 1) != place.world_size:
        from idmm_tui.runs.launcher import resume_command

        command, why = resume_command(run.read_summary(), run.path)
        how = f"resume it with: {shlex.join(command)}" if command else why
        raise RunStateError(
            f"{run.path} was checkpointed with {resume_state.get('world_size')} processes and this is "
            f"{place.world_size}: an exact resume needs every rank's RNG state, so {how}"
        )
    loader = init_loader(recipe.init) if recipe.init else None
    tracker = open_tracker(run, recipe, warn=lambda text: _warn(run, reporter, text), enabled=place.is_main)
    trainer = Trainer(run, recipe, place, reporter, stop, init_weights=loader, tracker=tracker, launch_info=launch)
    tracker.start(run.read_summary() if place.is_main else {})
    try:
        summary = trainer.fit(resume_state)
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, (RunInterrupted, KeyboardInterrupt)) else "failed"
        known = as_user_error(exc) if isinstance(exc, Exception) else None
        message = redact_text(str(known or exc) or type(exc).__name__)
        try:  # best effort: the disk may be full or read-only now, and the first error is the one to tell
            trainer.update_summary(
                status=status, error=None if status == "interrupted" else message, pid=None, pid_start=None
            )
            if place.is_main:
                run.append_log(f"run {status}: {message}")
                if isinstance(exc, KeyboardInterrupt):  # a forced stop: do not keep the user waiting
                    tracker.flush_timeout_s = min(getattr(tracker, "flush_timeout_s", 0.0), 3.0)
                tracker.finish(run.read_summary())
        except OSError:
            pass
        raise
    tracker.finish(summary)
    return summary


def _warn(run: RunDir, reporter: Reporter | None, text: str) -> None:
    """A tracking warning: in run.log and on the progress display (never an error)."""
    run.append_log(text)
    if reporter is not None:
        reporter.message(text)


def check_resume_position(run: RunDir, recipe: Recipe, state: dict[str, Any]) -> None:
    """The checkpoint's position must be one of the run's stages (else resuming would "complete" a run
    that never trained): CheckpointError naming what the checkpoint says and what the plan has."""
    stages = plan_stages(recipe)
    index = state["stage_index"] - 1 if state["stage_done"] else state["stage_index"]
    names = ", ".join(f"{s.index}: {s.name}" for s in stages) or "none"
    where = run.checkpoint(LAST).with_suffix(".json")
    if not 0 <= index < len(stages) or stages[index].name != state["stage"]:
        raise CheckpointError(
            f"{where} names stage {state['stage']!r} at position {index}, but the run's plan has [{names}]: "
            "it does not belong to this run's recipe; not resumed"
        )
    stage = stages[index]
    if not state["stage_done"] and state["epoch"] > stage.cfg.epochs:
        raise CheckpointError(
            f"{where} is at epoch {state['epoch']} of stage {stage.name!r}, which has {stage.cfg.epochs}; not resumed"
        )
