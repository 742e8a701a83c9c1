"""Mirror runs into the trackers researchers already use: TensorBoard, MLflow, Weights & Biases.

A run's ``[track]`` recipe table (or ``idmm run --track tensorboard,mlflow,wandb``) names the sinks;
while the run trains, rank 0 sends each of them every metrics.jsonl record as scalars at its step,
the resolved recipe as hyper-parameters, stage boundaries, the final summary, and the t-SNE PNGs
``idmm viz tsne`` makes later. ``idmm export RUN…|GROUP --to SINK`` does the same from finished run
directories (a sweep group becomes an MLflow experiment / a W&B group).

* :mod:`.core` — the :class:`~.core.Sink` interface, the record -> scalar mapping, the background
  :class:`~.core.Tracker` (a failing sink warns once and is dropped; training never waits on it);
* :mod:`.tensorboard_sink`, :mod:`.mlflow_sink`, :mod:`.wandb_sink` — one module per sink, each
  importing its library only when started (extras ``idmm[tensorboard]``, ``idmm[mlflow]``, ``idmm[wandb]``);
* :mod:`.replay` — ``idmm export``: a finished run directory played through the sinks.

metrics.jsonl stays the source of truth: nothing here is read back by idmm.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from idmm_tui.runs.store import RunDir
from idmm_tui.tracking.core import SINKS, NullTracker, Settings, Tracker, make_sink, missing_library, read_state

__all__ = ["SINKS", "NullTracker", "Settings", "Tracker", "open_tracker", "mirror_artifact", "settings_for"]


def settings_for(run: RunDir, track: Any) -> Settings:
    """:class:`Settings` from a recipe's ``[track]`` table; ``dir`` defaults to ``<runs dir>/tracking``."""
    folder = (Path(track.dir).expanduser() if track.dir else run.path.parent / "tracking").absolute()
    return Settings(
        dir=folder,
        mlflow_uri=track.mlflow_uri,
        mlflow_experiment=track.mlflow_experiment,
        wandb_project=track.wandb_project,
        wandb_entity=track.wandb_entity,
        wandb_group=track.wandb_group,
        wandb_mode=track.wandb_mode,
    )


def open_tracker(
    run: RunDir, recipe: Any, *, warn: Callable[[str], None], enabled: bool = True
) -> Tracker | NullTracker:
    """The tracker of a run (rank 0: ``enabled``): its recipe's ``[track].sinks`` that are installed.

    A sink whose library is missing is left out with one warning naming the extra to install.
    """
    if not enabled or not recipe.track.sinks:
        return NullTracker()
    from idmm_tui.recipe import to_table

    sinks = []
    for name in recipe.track.sinks:
        advice = missing_library(name)
        if advice:
            warn(advice)
            continue
        sinks.append(make_sink(name))
    if not sinks:
        return NullTracker()
    settings = settings_for(run, recipe.track)
    return Tracker(run, to_table(recipe), sinks, settings, warn=warn, flush_timeout_s=recipe.track.flush_timeout_s)


def mirror_artifact(run: RunDir, png: Path, *, warn: Callable[[str], None]) -> list[str]:
    """Send a PNG made after training (``idmm viz tsne``) to the sinks the run was mirrored to.

    Reopens each sink's mirror from the run's tracking.json (the MLflow run, the W&B run id, the
    TensorBoard folder); returns the sinks that took it. Failures warn and return without it.
    """
    from idmm_tui.recipe import parse_saved_recipe, to_table

    state = read_state(run)
    if not state or Path(png).suffix.lower() != ".png":
        return []
    try:
        recipe = parse_saved_recipe(run.recipe.read_text(encoding="utf-8"), str(run.recipe))
    except Exception as exc:  # noqa: BLE001 - the picture is made; mirroring it is a bonus
        warn(f"tracking: not mirrored ({exc})")
        return []
    names = [n for n in recipe.track.sinks if n in state and not missing_library(n)]
    if not names:
        return []
    tracker = Tracker(
        run,
        to_table(recipe),
        [make_sink(n) for n in names],
        settings_for(run, recipe.track),
        warn=warn,
        flush_timeout_s=recipe.track.flush_timeout_s,
    )
    summary = run.read_summary()
    tracker.start(summary)
    tracker.artifact(png)
    tracker.finish(summary)
    return [n for n in names if n not in tracker._dead]
