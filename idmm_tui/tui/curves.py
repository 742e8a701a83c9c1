"""A run's metrics as per-stage columns, growing as records arrive (pure: no Textual).

The tailing worker turns new ``metrics.jsonl`` records into :class:`StageColumns` (``columnize``);
the screen appends them to its :class:`RunCurves`, whose stages hand the plots numpy series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from idmm_tui.tui.downsample import ema
from idmm_tui.tui.format import num
from idmm_tui.tui.summary import current_of, plan_of

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


def best_test_acc(curves: RunCurves, metric: str = "test_acc") -> float | None:
    best = None
    for stage in curves.stages.values():
        values = [v for v in stage.epochs[metric] if math.isfinite(v)]
        if values:
            best = max(values) if best is None else max(best, max(values))
    return best
