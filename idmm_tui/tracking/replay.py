"""``idmm export RUN…|GROUP --to SINK``: finished (or stopped) run directories played through the sinks.

Reads only what a run directory holds: recipe.toml, summary.json, metrics.jsonl and the PNGs under
``eval/``. Each export makes a new mirror (a new MLflow run, a new W&B run; the TensorBoard folder's
earlier event files are replaced), so exporting twice gives two MLflow/W&B runs, never a merge.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from idmm_tui.errors import IdmmError, RunStateError, UsageError
from idmm_tui.runs.store import RunDir
from idmm_tui.tracking.core import SINKS, Settings, StartInfo, describe, make_sink, missing_library


class ExportError(IdmmError):
    """A sink refused an export (server down, no login): named, with the run it stopped at."""

    exit_code = 1


def parse_sinks(text: str) -> list[str]:
    """``"tensorboard,mlflow"`` -> the sink names (checked, no repeats); ``none`` or empty -> []."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise UsageError(f"unknown tracking sink {unknown[0]!r}: use {', '.join(SINKS)} (comma-separated)")
    return list(dict.fromkeys(names))


def replay_events(run: RunDir) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, tuple[Any, ...]]]]:
    """The recipe table, the summary and the sink calls that mirror ``run`` (in the order training made them)."""
    summary = run.read_summary()
    try:
        recipe = tomllib.loads(run.recipe.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RunStateError(f"{run.recipe}: cannot read the run's recipe ({exc})") from None
    plan = {p.get("name"): p for p in summary.get("plan") or [] if isinstance(p, dict)}
    finals = summary.get("stages") or {}
    events: list[tuple[str, tuple[Any, ...]]] = []
    current = None

    def close_stage(name: str | None) -> None:
        if name is not None and isinstance(finals.get(name), dict) and finals[name].get("status") == "completed":
            events.append(("stage", ("completed", name, dict(finals[name]))))

    for record in run.read_metrics():
        stage = record.get("stage")
        if stage != current:
            close_stage(current)
            current = stage
            p = plan.get(stage) or {}
            events.append(("stage", ("started", stage, {k: p[k] for k in ("kind", "epochs", "resolution") if k in p})))
        events.append(("record", (record,)))
    close_stage(current)
    for png in sorted((run.path / "eval").glob("*.png")):
        events.append(("artifact", (png, png.stem)))
    return recipe, summary, events


def export_runs(
    runs: list[RunDir], sinks: list[str], settings: Settings, *, group: str = "", on_run=None
) -> list[dict[str, Any]]:
    """Mirror each run to each sink; returns one row per (run, sink): what was sent and where.

    ``group`` (a sweep's name) sets the MLflow experiment / W&B group when the settings name none.
    A sink that fails stops the export with an :class:`ExportError` naming it and the run.
    """
    for name in sinks:
        advice = missing_library(name)
        if advice:
            raise UsageError(advice.replace(" (the run goes on without it)", ""))
    rows = []
    for run in runs:
        recipe, summary, events = replay_events(run)
        if group and not summary.get("group"):
            summary = {**summary, "group": group}
        for name in sinks:
            sink = make_sink(name)
            try:
                where = sink.start(StartInfo(run, recipe, summary, settings, fresh=True))
                for method, args in events:
                    getattr(sink, method)(*args)
                sink.finish(summary)
            except Exception as exc:
                try:
                    sink.abort()
                except Exception:  # noqa: BLE001
                    pass
                raise ExportError(f"export of {run.name} to {name} failed: {describe(exc)}") from None
            row = {
                "run": run.name,
                "sink": name,
                "records": sum(1 for m, _ in events if m == "record"),
                "pngs": sum(1 for m, _ in events if m == "artifact"),
                **{k: v for k, v in where.items() if isinstance(v, str | int)},
            }
            rows.append(row)
            if on_run is not None:
                on_run(row)
    return rows


def default_dir(runs_dir: Path) -> Path:
    return runs_dir / "tracking"
