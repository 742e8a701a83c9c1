"""What the dashboard shows, computed from a run directory's files (pure: no Textual).

Everything here takes the dictionaries read from ``summary.json`` / ``metrics.jsonl`` /
``recipe.toml`` and tolerates any odd content in them (missing keys, wrong types, NaN): a viewer
shows a dash, it never raises.
"""

from __future__ import annotations

import math
import socket
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idmm_tui.recipe import flatten
from idmm_tui.runs.store import STATUSES, effective_status, pid_alive  # noqa: F401 (pid_alive re-exported)
from idmm_tui.tui.downsample import ema

STATUS_STYLE = {
    "running": "bold green",
    "completed": "cyan",
    "failed": "bold red",
    "interrupted": "yellow",
    "starting": "dim",
}
STATUS_ICON = {"running": "▶", "completed": "✓", "failed": "✗", "interrupted": "‖", "starting": "…"}

METRICS = ("loss", "lr", "test_acc", "images_per_s")
METRIC_TITLES = {
    "loss": "loss",
    "lr": "learning rate",
    "test_acc": "test accuracy (%)",
    "images_per_s": "images/s",
    "knn_acc": "kNN accuracy (%)",
}
#: Metrics only on the per-epoch lines: test accuracy (fine-tuning), kNN monitor accuracy (pretraining).
EPOCH_ONLY = ("test_acc", "knn_acc")
SMOOTHABLE = ("loss", "images_per_s")
SMOOTHING_LEVELS = (0.0, 0.6, 0.9, 0.99)

#: Stable run colours (Tableau 10): a run keeps its colour across screens and sessions.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (78, 121, 167),
    (242, 142, 43),
    (225, 87, 89),
    (118, 183, 178),
    (89, 161, 79),
    (237, 201, 72),
    (176, 122, 161),
    (255, 157, 167),
    (156, 117, 95),
    (186, 176, 172),
)


def num(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, bool, string, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def on_this_host(summary: dict[str, Any]) -> bool:
    host = summary.get("host")
    return host in (None, "") or host == socket.gethostname()


def run_status(summary: dict[str, Any]) -> str:
    """The core's ``effective_status`` (a "running" run whose process is gone is "interrupted");
    "starting" for an empty or unreadable summary."""
    if not summary:
        return "starting"
    try:
        status = effective_status(summary)
    except (OverflowError, TypeError, ValueError):  # an absurd pid
        status = text(summary.get("status"))
    return status if status in STATUSES else text(summary.get("status")) or "?"


def fmt_duration(seconds: Any) -> str:
    s = num(seconds)
    if s is None or s < 0:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_num(value: Any, digits: int = 2) -> str:
    v = num(value)
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt_lr(value: Any) -> str:
    v = num(value)
    return "–" if v is None else f"{v:.2e}"


def fmt_started(value: Any, *, year: bool = False) -> str:
    """``2026-11-26T12:00:05+0000`` as ``11-26 12:00`` (or ``2026-11-26 12:00``), as the trainer wrote it."""
    s = text(value)
    if len(s) >= 16 and s[4] == "-" and s[10] == "T":
        return (s[:10] if year else s[5:10]) + " " + s[11:16]
    return s or "–"


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table."""

    path: Path
    name: str
    status: str
    backbone: str
    dataset: str
    method: str
    stage: str
    epoch: str
    test_acc: float | None
    images_per_s: float | None
    started_at: str
    duration_s: float | None

    @property
    def position(self) -> str:
        """Current stage and epoch, e.g. ``finetune_28 3/20``."""
        return f"{self.stage} {self.epoch}".strip()

    def cells(self) -> tuple[str, ...]:
        """Plain text of every column (for the filter)."""
        return (
            self.status,
            self.name,
            self.backbone,
            self.dataset,
            self.method,
            self.position,
            fmt_num(self.test_acc),
            fmt_num(self.images_per_s, 0),
            fmt_started(self.started_at, year=True),
            fmt_duration(self.duration_s),
        )

    def matches(self, query: str) -> bool:
        """Every whitespace-separated term of ``query`` appears in some column (case-insensitive)."""
        terms = query.lower().split()
        if not terms:
            return True
        haystack = " ".join(self.cells()).lower()
        return all(term in haystack for term in terms)


def _stages(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    stages = summary.get("stages")
    if not isinstance(stages, dict):
        return {}
    return {k: v for k, v in stages.items() if isinstance(v, dict)}


def stages_in_order(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-stage final metrics in plan order (summary.json may store its keys sorted)."""
    stages = _stages(summary)
    names = [p["name"] for p in plan_of(summary) if p["name"] in stages]
    names += [n for n in stages if n not in names]
    return [stages[n] for n in names]


def plan_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    plan = summary.get("plan")
    return [p for p in plan if isinstance(p, dict) and isinstance(p.get("name"), str)] if isinstance(plan, list) else []


def current_of(summary: dict[str, Any]) -> dict[str, Any]:
    current = summary.get("current")
    return current if isinstance(current, dict) else {}


def last_test_acc(summary: dict[str, Any]) -> float | None:
    value = num(summary.get("test_acc"))
    if value is not None:
        return value
    value = num(current_of(summary).get("test_acc"))
    if value is not None:
        return value
    for stage in reversed(stages_in_order(summary)):
        if num(stage.get("test_acc")) is not None:
            return num(stage.get("test_acc"))
    return None


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a ``%Y-%m-%dT%H:%M:%S%z`` stamp (as the trainer writes them), else None."""
    from datetime import datetime

    try:
        return datetime.strptime(text(value), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def live_wall_time(summary: dict[str, Any], status: str, now: float | None = None) -> float | None:
    """``wall_time_s``, plus the time since the last summary write while the run is running."""
    wall = num(summary.get("wall_time_s"))
    if status != "running":
        return wall
    updated = parse_time(summary.get("updated_at"))
    if updated is None:
        return wall
    import time

    return (wall or 0.0) + max(0.0, (time.time() if now is None else now) - updated)


def run_row(path: Path, summary: dict[str, Any]) -> RunRow:
    status = run_status(summary)
    current = current_of(summary)
    stage, epoch = text(current.get("stage")), ""
    if current:
        e, total = num(current.get("epoch")), num(current.get("epochs"))
        if e is not None:
            epoch = f"{int(e)}/{int(total)}" if total is not None else str(int(e))
    elif status == "completed" and plan_of(summary):
        last = plan_of(summary)[-1]
        stage = last["name"]
        epochs = num(last.get("epochs"))
        epoch = f"{int(epochs)}/{int(epochs)}" if epochs is not None else ""
    ips = num(current.get("images_per_s"))
    if ips is None:
        for s in reversed(stages_in_order(summary)):
            ips = num(s.get("images_per_s"))
            if ips is not None:
                break
    return RunRow(
        path=Path(path),
        name=text(summary.get("name")) or Path(path).name,
        status=status,
        backbone=text(summary.get("backbone")),
        dataset=text(summary.get("dataset")),
        method=text(summary.get("method")),
        stage=stage,
        epoch=epoch,
        test_acc=last_test_acc(summary),
        images_per_s=ips,
        started_at=text(summary.get("started_at")),
        duration_s=live_wall_time(summary, status),
    )


#: Columns of the runs table (RunRow attribute, title): what changes first, so that a narrow terminal
#: shows it without scrolling sideways.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "status"),
    ("name", "name"),
    ("position", "stage / epoch"),
    ("test_acc", "test acc"),
    ("images_per_s", "img/s"),
    ("duration_s", "duration"),
    ("started_at", "started"),
    ("backbone", "backbone"),
    ("dataset", "dataset"),
    ("method", "method"),
)


def sort_rows(rows: list[RunRow], column: str, reverse: bool) -> list[RunRow]:
    """Rows sorted by ``column``; missing values always last, ties by start time (newest first)."""
    rows = sorted(rows, key=lambda r: r.started_at, reverse=True)

    def key(row: RunRow):
        value = getattr(row, column)
        if column == "position":
            value = (row.stage, _first_int(row.epoch) or 0) if row.stage else None
        missing = value is None or value == ""
        return (missing, value if not missing else 0)

    present = [r for r in rows if not key(r)[0]]
    absent = [r for r in rows if key(r)[0]]
    return sorted(present, key=lambda r: key(r)[1], reverse=reverse) + absent


def _first_int(value: str) -> int | None:
    head = value.split("/")[0]
    return int(head) if head.isdigit() else None


# ---------------------------------------------------------------------------------------------
# the stage timeline and ETA


@dataclass(frozen=True)
class StageState:
    name: str
    kind: str
    epochs: int | None
    resolution: int | None
    state: str  # done | pending | running | interrupted | failed
    epoch: int | None  # the current epoch of the active stage


def timeline(summary: dict[str, Any]) -> list[StageState]:
    status = run_status(summary)
    stages, current = _stages(summary), current_of(summary)
    out = []
    active_found = False
    for item in plan_of(summary):
        name = item["name"]
        epochs, res = num(item.get("epochs")), num(item.get("resolution"))
        epoch = None
        if stages.get(name, {}).get("status") == "completed":
            state = "done"
        elif current.get("stage") == name and not active_found:
            state, active_found = ("running" if status in ("running", "starting") else status), True
            epoch = int(num(current.get("epoch")) or 0) or None
        elif status in ("failed", "interrupted") and not active_found and not current:
            state, active_found = status, True  # stopped before the stage reported a position
        else:
            state = "pending"
        out.append(
            StageState(
                name,
                text(item.get("kind")),
                int(epochs) if epochs is not None else None,
                int(res) if res is not None else None,
                state,
                epoch,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# curves


TRAIN_COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "time")
EPOCH_COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "time", "test_acc", "knn_acc")


@dataclass
class StageColumns:
    """Metrics records of one stage turned into columns (NaN where a value is missing or odd)."""

    index: int
    train: dict[str, list[float]]
    epochs: dict[str, list[float]]


def columnize(records: list[dict[str, Any]]) -> dict[str, StageColumns]:
    """Records grouped by stage, as columns: the per-record work, done in the tailing thread."""
    out: dict[str, StageColumns] = {}
    nan = math.nan
    for record in records:
        stage = record.get("stage")
        if not isinstance(stage, str) or not stage:
            continue
        cols = out.get(stage)
        if cols is None:
            index = num(record.get("stage_index"))
            cols = out[stage] = StageColumns(
                -1 if index is None else int(index), {k: [] for k in TRAIN_COLUMNS}, {k: [] for k in EPOCH_COLUMNS}
            )
        target = cols.epochs if record.get("kind") == "epoch" else cols.train
        for key, column in target.items():
            value = num(record.get(key))
            column.append(nan if value is None else value)
    return out


class StageCurves:
    """The metrics of one stage as columns, growing as records arrive.

    Columns are Python lists (cheap to extend); their numpy copies are cached and extended only by
    the new values, as are the smoothed series, so a redraw of a 100k-point stage does not convert
    or smooth 100k values again.
    """

    def __init__(self, name: str, index: int):
        self.name, self.index = name, index
        self.train: dict[str, list[float]] = {k: [] for k in TRAIN_COLUMNS}
        self.epochs: dict[str, list[float]] = {k: [] for k in EPOCH_COLUMNS}
        self._arrays: dict[tuple[str, str], np.ndarray] = {}
        self._smooth: dict[tuple[str, str, float], tuple[list[float], tuple[float, float]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        columns = columnize([dict(record, stage=self.name)])
        if columns:
            self.extend(next(iter(columns.values())))

    def extend(self, cols: StageColumns) -> None:
        for key, values in cols.train.items():
            self.train[key].extend(values)
        for key, values in cols.epochs.items():
            self.epochs[key].extend(values)

    def __len__(self) -> int:
        return len(self.train["step"]) + len(self.epochs["step"])

    def column(self, source: str, key: str) -> np.ndarray:
        """``self.train[key]`` or ``self.epochs[key]`` as a float array (cached, grown incrementally)."""
        values = self.epochs[key] if source == "epochs" else self.train[key]
        cached = self._arrays.get((source, key))
        if cached is None or len(cached) > len(values):
            cached = np.asarray(values, dtype=float)
        elif len(cached) < len(values):
            cached = np.concatenate([cached, np.asarray(values[len(cached) :], dtype=float)])
        self._arrays[(source, key)] = cached
        return cached

    @property
    def steps_per_epoch(self) -> float | None:
        for step, epoch in zip(self.epochs["step"], self.epochs["epoch"], strict=True):
            if step > 0 and epoch > 0:
                return step / epoch
        return None

    def has(self, metric: str) -> bool:
        xs, ys = self.xy(metric, "step", 0.0)
        return len(ys) > 0

    def xy(self, metric: str, x_axis: str = "step", smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The points of ``metric`` against ``x_axis`` ("step" or "epoch"), finite values only."""
        source = "epochs" if metric in EPOCH_ONLY else "train"
        if source == "train" and not np.isfinite(self.column("train", metric)).any():
            source = "epochs"  # no train lines (log_every > steps per stage): use the epoch lines
        ys = self.column(source, metric)
        if smoothing > 0 and metric in SMOOTHABLE and len(ys):
            ys = np.asarray(self._smoothed(source, metric, smoothing), dtype=float)
        if x_axis == "epoch":
            spe = self.steps_per_epoch
            if source == "epochs" or spe is None:
                xs = self.column(source, "epoch")
            else:
                xs = self.column(source, "step") / spe
        else:
            xs = self.column(source, "step")
        keep = np.isfinite(xs) & np.isfinite(ys)
        return xs[keep], ys[keep]

    def _smoothed(self, source: str, metric: str, weight: float) -> list[float]:
        values = (self.epochs if source == "epochs" else self.train)[metric]
        key = (source, metric, weight)
        done, state = self._smooth.get(key, ([], None))
        if len(done) < len(values):
            more, state = ema(values[len(done) :], weight, state=state)
            done.extend(more)
            self._smooth[key] = (done, state)
        return done

    def rate(self, window: int = 50) -> float | None:
        """Training steps per second over the last ``window`` train lines (None when unknown)."""
        steps, times = self.train["step"][-window:], self.train["time"][-window:]
        pairs = [(s, t) for s, t in zip(steps, times, strict=True) if math.isfinite(s) and math.isfinite(t)]
        if len(pairs) < 2:
            return None
        (s0, t0), (s1, t1) = pairs[0], pairs[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        return (s1 - s0) / (t1 - t0)


class RunCurves:
    """All stages of one run."""

    def __init__(self) -> None:
        self.stages: dict[str, StageCurves] = {}
        self.version = 0
        self.points = 0

    def add(self, records: list[dict[str, Any]]) -> None:
        """Add raw records (columnized here; the dashboard's worker columnizes them beforehand)."""
        self.add_columns(columnize(records))

    def add_columns(self, columns: dict[str, StageColumns]) -> None:
        for stage, cols in columns.items():
            curves = self.stages.get(stage)
            if curves is None:
                index = cols.index if cols.index >= 0 else len(self.stages)
                curves = self.stages[stage] = StageCurves(stage, index)
            curves.extend(cols)
            self.points += len(cols.train["step"]) + len(cols.epochs["step"])
        if columns:
            self.version += 1

    def stage_names(self, summary: dict[str, Any] | None = None) -> list[str]:
        """The plan's stages (in order) then any other stage seen in the metrics."""
        names = [p["name"] for p in plan_of(summary or {})]
        extra = sorted((s for s in self.stages.values() if s.name not in names), key=lambda s: s.index)
        return names + [s.name for s in extra]


def stage_eta(summary: dict[str, Any], curves: RunCurves) -> float | None:
    """Seconds left in the current stage at the recent step rate (None when not running or unknown)."""
    if run_status(summary) != "running":
        return None
    current = current_of(summary)
    stage = curves.stages.get(text(current.get("stage")))
    step, total = num(current.get("step")), num(current.get("total_steps"))
    if stage is None or total is None:
        return None
    done = stage.train["step"][-1] if stage.train["step"] else step
    if done is None or not math.isfinite(done):
        return None
    rate = stage.rate()
    if rate is None:
        return None
    return max(total - done, 0.0) / rate


def default_stage(summary: dict[str, Any], curves: RunCurves) -> str | None:
    """The stage to show first: the current one while running, else the last one with metrics."""
    current = current_of(summary).get("stage")
    if isinstance(current, str) and current:
        return current
    names = [n for n in curves.stage_names(summary) if n in curves.stages and len(curves.stages[n])]
    if names:
        return names[-1]
    names = curves.stage_names(summary)
    return names[-1] if names else None


# ---------------------------------------------------------------------------------------------
# comparing runs


def assign_colors(names: list[str]) -> dict[str, tuple[int, int, int]]:
    """A colour per run name: its hashed palette slot, or the next free one on a collision."""
    taken: set[int] = set()
    out = {}
    for name in names:
        slot = zlib.crc32(name.encode()) % len(PALETTE)
        for k in range(len(PALETTE)):
            if (slot + k) % len(PALETTE) not in taken:
                slot = (slot + k) % len(PALETTE)
                break
        taken.add(slot)
        out[name] = PALETTE[slot]
    return out


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def parse_recipe(text_: str | None) -> dict[str, Any]:
    """The flattened recipe, ``{}`` when missing or not TOML."""
    if not text_:
        return {}
    try:
        return flatten(tomllib.loads(text_))
    except (tomllib.TOMLDecodeError, ValueError):
        return {}


MISSING = object()


def recipe_diff(recipes: list[dict[str, Any]], ignore: tuple[str, ...] = ("description",)) -> list[tuple[str, list]]:
    """Keys whose values differ between the flattened recipes: ``[(key, [value or MISSING, …])]``."""
    keys: list[str] = []
    for flat in recipes:
        keys.extend(k for k in flat if k not in keys)
    out = []
    for key in keys:
        if key in ignore:
            continue
        values = [flat.get(key, MISSING) for flat in recipes]
        if any(v != values[0] for v in values[1:]):
            out.append((key, values))
    return out


def fmt_value(value: Any) -> str:
    if value is MISSING:
        return "–"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def best_test_acc(curves: RunCurves, metric: str = "test_acc") -> float | None:
    best = None
    for stage in curves.stages.values():
        values = [v for v in stage.epochs[metric] if math.isfinite(v)]
        if values:
            best = max(values) if best is None else max(best, max(values))
    return best
