"""Paper-shaped tables from run directories: method × dataset, source × target, ablation rows.

A report collects runs (a sweep group, or any runs), keys each by the recipe values that vary
between them (a sweep's axes), averages over seeds (mean ± sample std, n) and lays the cells out:

* one varying key        -> one row per value, with columns test_acc, kNN, linear probe, wall time;
* two keys               -> a matrix (``pretrain.method`` as rows when present);
* a transfer sweep       -> pretraining sources (dataset, method) as rows, targets as columns;
* three or more (or ``layout="rows"``) -> one row per combination (the shape of an ablation table).

Where a cell's setting matches one in the paper (backbone, method, dataset, pretraining source and
the table's epochs/resolutions), the paper's number is carried beside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from idmm_tui.experiments.groups import Group
from idmm_tui.experiments.sweep import SOURCE_PREFIX
from idmm_tui.fsutil import read_text_file
from idmm_tui.recipe import is_method_key, recipe_keys
from idmm_tui.runs.store import UNREADABLE, RunDir, effective_status, iter_metrics, summary_or_problem

METRICS = ("test_acc", "knn_start", "knn_acc", "linear_acc", "loss_first", "loss_last", "wall_time_s")
METRIC_TITLES = {
    "test_acc": "test acc",
    "knn_start": "kNN before",
    "knn_acc": "kNN after",
    "loss_first": "loss ep 1",
    "loss_last": "loss last ep",
    "linear_acc": "linear probe",
    "wall_time_s": "wall s",
}
IGNORED_KEYS = {
    "name",
    "description",
    "seed",
    "device",
    "log_every",
    "checkpoint_every_s",
    "data.num_workers",
    "data.cache",
    "data.root",
    "data.download",
}


@dataclass
class RunFacts:
    """What a report needs from one run directory."""

    name: str
    status: str
    values: dict[str, str]
    seed: int
    recipe: dict[str, Any]
    metrics: dict[str, float | None]
    source_recipe: dict[str, Any] = field(default_factory=dict)


def _read_recipe(run: RunDir) -> dict[str, Any]:
    try:
        return tomllib.loads(read_text_file(run.recipe))
    except (OSError, ValueError):  # missing, not UTF-8, not TOML: the run is shown without its settings
        return {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def run_facts(run: RunDir, values: dict[str, str] | None = None) -> RunFacts:
    """Final metrics of a run: test_acc, the last kNN of pretraining, the linear probe, wall time.

    A run whose summary.json cannot be read is reported as ``unreadable`` (no metrics), not an error."""
    summary, problem = summary_or_problem(run)
    recipe = _read_recipe(run)
    knn = None
    losses = []
    for record in iter_metrics(run.metrics):
        if record.get("stage") != "pretrain" or record.get("kind") != "epoch":
            continue
        if _number(record.get("knn_acc")) is not None:
            knn = _number(record["knn_acc"])
        if _number(record.get("loss")) is not None:
            losses.append(_number(record["loss"]))
    knn_start = summary.get("knn_start", {}).get("pretrain") if isinstance(summary.get("knn_start"), dict) else None
    linear = summary.get("evals", {}).get("linear", {}) if isinstance(summary.get("evals"), dict) else {}
    linear_acc = None
    if linear:
        preferred = linear.get("pretrain") or next(iter(linear.values()))
        linear_acc = preferred.get("test_acc") if isinstance(preferred, dict) else None
    source_recipe: dict[str, Any] = {}
    init = str(recipe.get("init") or "")
    if init and (run.path.parent / init).joinpath("recipe.toml").is_file():
        source_recipe = _read_recipe(RunDir(run.path.parent / init))
    seed = summary.get("seed") if isinstance(summary.get("seed"), int) else recipe.get("seed")
    return RunFacts(
        name=run.name,
        status=f"{UNREADABLE}: {problem}" if problem else effective_status(summary),
        values=dict(values or {}),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        recipe=recipe,
        metrics={
            "test_acc": summary.get("test_acc"),
            "knn_start": knn_start,
            "knn_acc": knn,
            "linear_acc": linear_acc,
            "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if len(losses) > 1 else None,
            "wall_time_s": summary.get("wall_time_s"),
        },
        source_recipe=source_recipe,
    )


def collect(runs: list[RunDir], groups: list[Group]) -> list[RunFacts]:
    """Facts of every run, keyed by its sweep cell's values, or else by the recipe keys that differ."""
    cell_values: dict[str, dict[str, str]] = {}
    not_started: list[RunFacts] = []
    for group in groups:
        for cell in group.cells:
            cell_values[cell.name] = {k: v for k, v in cell.values.items() if k != "seed"}
            if cell.role == "run" and not (group.run_path(cell) / "summary.json").is_file():
                seed = int(cell.values.get("seed", 0))
                not_started.append(RunFacts(cell.name, "not started", cell_values[cell.name], seed, {}, {}))
    facts = [run_facts(run, cell_values.get(run.name)) for run in runs] + not_started
    loose = [f for f in facts if f.name not in cell_values]
    if loose:
        flat = {f.name: recipe_keys(f.recipe) for f in loose}
        keys = sorted({k for d in flat.values() for k in d} - IGNORED_KEYS)
        varying = [k for k in keys if len(_values_of(k, flat.values())) > 1]
        for f in loose:
            f.values = {k: _show(flat[f.name].get(k)) for k in varying}
    return facts


def _values_of(key: str, recipes: Any) -> set[str]:
    """The distinct values of ``key``; a method's own key counts only where the run's method has it
    (runs of another method lack it because of the method, which is itself a recipe key). A run of a
    method that has the key but leaves it unset (a None default: TOML cannot write it) counts as unset."""
    recipes = list(recipes)
    owners = {d.get("pretrain.method") for d in recipes if key in d}
    present = [d for d in recipes if key in d or not is_method_key(key) or d.get("pretrain.method") in owners]
    return {json.dumps(d.get(key)) for d in present}


def _show(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value)


# ---------------------------------------------------------------------------------------------
# aggregation and layout


@dataclass
class Stat:
    """Mean ± sample std over the seeds of one cell (``n`` finished runs; ``pending`` others)."""

    values: list[float]
    pending: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def text(self, digits: int = 2) -> str:
        if not self.values:
            return ", ".join(sorted(set(self.pending))) or "–"
        out = f"{self.mean:.{digits}f}"
        if self.std is not None:
            out += f" ± {self.std:.{digits}f}"
        if self.n > 1 or self.pending:
            out += f" (n={self.n}{'+' + str(len(self.pending)) + ' pending' if self.pending else ''})"
        return out


@dataclass
class Report:
    """A laid-out table: ``cells[row][col]`` -> Stat, plus the paper's numbers where they apply."""

    title: str
    row_keys: list[str]
    col_keys: list[str]
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Stat]
    paper: dict[tuple[str, str], float] = field(default_factory=dict)
    metric: str = "test_acc"
    notes: list[str] = field(default_factory=list)


def _label(values: dict[str, str], keys: list[str]) -> str:
    if not keys:
        return "all"
    parts = [values.get(k, "–").strip('"') for k in keys]
    if all(k.startswith(SOURCE_PREFIX) for k in keys) and set(parts) == {"none"}:
        return "none (random init)"
    if len(keys) == 1:
        return parts[0]
    short = [k.removeprefix(SOURCE_PREFIX).rsplit(".", 1)[-1] for k in keys]
    return ", ".join(f"{k}={p}" for k, p in zip(short, parts, strict=True))


def choose_layout(keys: list[str], layout: str, rows: list[str] | None, cols: list[str] | None) -> tuple[list, list]:
    """Row and column keys: as given, or the defaults described in the module docstring."""
    if rows is not None or cols is not None:
        rows = rows if rows is not None else [k for k in keys if k not in (cols or [])]
        cols = cols if cols is not None else [k for k in keys if k not in rows]
        return rows, cols
    sources = [k for k in keys if k.startswith(SOURCE_PREFIX)]
    if layout != "rows" and sources and len(sources) < len(keys):  # transfer: sources x targets
        return sources, [k for k in keys if k not in sources]
    if layout == "rows" or len(keys) != 2:
        return list(keys), []
    first = [k for k in keys if k.endswith("pretrain.method")] or keys[:1]
    return first, [k for k in keys if k not in first]


def build(
    facts: list[RunFacts],
    *,
    metric: str = "test_acc",
    layout: str = "auto",
    rows: list[str] | None = None,
    cols: list[str] | None = None,
    title: str = "",
    paper_lookup: Any = None,
) -> Report:
    """Aggregate runs into a :class:`Report` (metric columns when there is no column key)."""
    keys: list[str] = []
    for f in facts:
        keys += [k for k in f.values if k not in keys]
    unknown = [k for k in (rows or []) + (cols or []) if k not in keys]
    if unknown:
        from idmm_tui.errors import UsageError

        raise UsageError(f"--rows/--cols {', '.join(unknown)}: not a varying key here (keys: {', '.join(keys)})")
    row_keys, col_keys = choose_layout(keys, layout, rows, cols)
    metric_columns = not col_keys
    cells: dict[tuple[str, str], Stat] = {}
    row_order: list[str] = []
    col_order: list[str] = []
    where: dict[tuple[str, str], RunFacts] = {}
    for f in facts:
        row = _label(f.values, row_keys)
        row_order += [row] if row not in row_order else []
        columns = list(METRICS) if metric_columns else [_label(f.values, col_keys)]
        for col in columns:
            col_order += [col] if col not in col_order else []
            stat = cells.setdefault((row, col), Stat([]))
            value = f.metrics.get(col if metric_columns else metric)
            # a monitor (kNN, probe) counts once written; a final metric only from a finished run
            monitor = col in ("knn_start", "knn_acc", "linear_acc", "loss_first", "loss_last")
            final = f.status == "completed" or monitor  # monitors show their latest value while running
            if value is not None and final:
                stat.values.append(float(value))
            elif f.status != "completed":  # a finished run without this value just shows "–"
                stat.pending.append(f.status)
            where.setdefault((row, columns[0] if metric_columns else col), f)
    if metric_columns:
        col_order = [c for c in METRICS if any(cells.get((r, c)) and cells[(r, c)].values for r in row_order)]
        col_order = col_order or ["test_acc"]
    paper: dict[tuple[str, str], float] = {}
    if paper_lookup is not None:
        for (row, col), f in where.items():
            number = paper_lookup(f)
            if number is not None:
                paper[(row, "test_acc" if metric_columns else col)] = number
    return Report(
        title=title,
        row_keys=row_keys,
        col_keys=col_keys,
        rows=row_order,
        cols=col_order,
        cells=cells,
        paper=paper,
        metric=metric,
    )


def column_title(report: Report, col: str) -> str:
    return METRIC_TITLES.get(col, col) if not report.col_keys else col


def corner_title(report: Report) -> str:
    return " × ".join(k.removeprefix(SOURCE_PREFIX).rsplit(".", 1)[-1] for k in report.row_keys) or "runs"


def cell_text(report: Report, row: str, col: str, *, paper: bool = True) -> str:
    stat = report.cells.get((row, col))
    digits = 0 if col == "wall_time_s" else 2
    text = stat.text(digits) if stat else "–"
    number = report.paper.get((row, col))
    if paper and number is not None:
        text += f" [paper {number:.1f}]"
    return text


# ---------------------------------------------------------------------------------------------
# rendering


def to_markdown(report: Report) -> str:
    head = [corner_title(report), *(column_title(report, c) for c in report.cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * len(report.cols)) + "|"]
    for row in report.rows:
        lines.append("| " + " | ".join([row, *(cell_text(report, row, c) for c in report.cols)]) + " |")
    title = f"**{report.title}**\n\n" if report.title else ""
    notes = "".join(f"\n{n}\n" for n in report.notes)
    return title + "\n".join(lines) + "\n" + notes


def records(report: Report) -> list[dict[str, Any]]:
    """One flat record per (row, column): for CSV and JSON."""
    out = []
    for row in report.rows:
        for col in report.cols:
            stat = report.cells.get((row, col)) or Stat([])
            out.append(
                {
                    "row": row,
                    "column": col,
                    "metric": col if not report.col_keys else report.metric,
                    "mean": _round(stat.mean),
                    "std": _round(stat.std),
                    "n": stat.n,
                    "values": stat.values,
                    "pending": stat.pending,
                    "paper": report.paper.get((row, col)),
                }
            )
    return out


def _round(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(value, 4)


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["row", "column", "metric", "mean", "std", "n", "paper"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records(report))
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return (
        json.dumps(
            {
                "title": report.title,
                "rows": report.row_keys,
                "columns": report.col_keys,
                "cells": records(report),
                "notes": report.notes,
            },
            indent=2,
        )
        + "\n"
    )


def describe_runs(facts: Iterable[RunFacts]) -> list[str]:
    """Notes under a table: what was held fixed (backbone, dataset, epochs) when it is one value."""
    facts = [f for f in facts if f.recipe]  # runs that exist
    notes = []
    pretrains = any(str(recipe_keys(f.recipe).get("pretrain.method")) != "none" for f in facts)
    finetunes = any(recipe_keys(f.recipe).get("finetune.0.epochs") for f in facts)
    for key, label, applies in (
        ("model.backbone", "backbone", True),
        ("data.dataset", "dataset", True),
        ("pretrain.epochs", "pretraining epochs", pretrains),  # a random-init sweep has no pretraining
        ("finetune.0.epochs", "fine-tuning epochs", finetunes),
    ):
        if not applies:
            continue
        seen = {json.dumps(recipe_keys(f.recipe).get(key)) for f in facts}
        if len(seen) == 1 and seen != {"null"} and not any(key in f.values for f in facts):
            notes.append(f"{label}: {next(iter(seen)).strip(chr(34))}")
    seeds = sorted({f.seed for f in facts})
    notes.append(f"runs: {len(facts)}, seeds: {', '.join(map(str, seeds)) or '–'}")
    return ["; ".join(notes)]
