"""A run's metrics as per-stage numpy columns, growing as records arrive (pure: no Textual).

The tailing worker turns ``metrics.jsonl`` records into :class:`StageColumns` (``columnize``); the
screen adds them to its :class:`RunCurves`: new records at the end, older ones (a long run is read
from its end first) at the start. Every cost on the UI thread is proportional to what arrived, not
to the run's length: columns grow in place, and each plotted series (:meth:`StageCurves.xy`,
finite points only, smoothed or not) is extended by the new points rather than rebuilt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from idmm_tui.tui.downsample import ema_array
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
_NUMBERS = (int, float)


class Column:
    """A float64 column in parts: older parts put in front, new values appended to a tail buffer in place.

    Adding k values costs O(k) whatever the column's length (nothing is copied on the UI thread);
    :meth:`parts` are views that later additions never change, so another thread may read them (and
    join them: :meth:`array`) without a lock.
    """

    __slots__ = ("_head", "_buf", "_n")

    def __init__(self) -> None:
        self._head: list[np.ndarray] = []  # older parts, oldest first
        self._buf = np.empty(64)
        self._n = 0

    def __len__(self) -> int:
        return self._n + sum(len(part) for part in self._head)

    @property
    def head_parts(self) -> int:
        """How many parts were put in front."""
        return len(self._head)

    def head_part(self, index: int) -> np.ndarray:
        return self._head[index]

    def tail(self) -> np.ndarray:
        """The appended values (a view)."""
        return self._buf[: self._n]

    def append(self, values: np.ndarray) -> None:
        k = len(values)
        if not k:
            return
        if self._n + k > len(self._buf):
            grown = np.empty(max(2 * len(self._buf), self._n + k))
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + k] = values
        self._n += k

    def prepend(self, values: np.ndarray) -> None:
        if len(values):
            self._head.insert(0, np.asarray(values, dtype=float))

    def parts(self) -> tuple[np.ndarray, ...]:
        """The values as consecutive arrays (views), oldest first."""
        return (*self._head, self.tail()) if self._n or not self._head else tuple(self._head)

    def array(self) -> np.ndarray:
        """The values as one array (a copy when the column is in several parts)."""
        return join(self.parts())

    def last(self, k: int | None = None) -> np.ndarray | float | None:
        """The last value (None when empty), or the last ``k`` values."""
        if k is None:
            if self._n:
                return float(self._buf[self._n - 1])
            return float(self._head[-1][-1]) if self._head else None
        if self._n >= k or not self._head:
            return self.tail()[-k:]
        return join(self.parts())[-k:]


def join(parts: tuple[np.ndarray, ...] | list[np.ndarray]) -> np.ndarray:
    """Arrays joined into one (the array itself when there is one)."""
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0)


@dataclass
class StageColumns:
    """Metrics records of one stage turned into columns (NaN where a value is missing or odd)."""

    index: int
    train: dict[str, np.ndarray]
    epochs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.train["step"]) + len(self.epochs["step"])


def _floats(records: list[dict[str, Any]], key: str) -> np.ndarray:
    """``record[key]`` of every record as floats; NaN for anything but a finite number."""
    values = [record.get(key) for record in records]
    try:
        out = np.fromiter((v if type(v) in _NUMBERS else math.nan for v in values), float, len(values))
    except OverflowError:  # an integer too large for a float
        out = np.array([math.nan if num(v) is None else float(v) for v in values], dtype=float)
    out[~np.isfinite(out)] = math.nan
    return out


def columnize(records: list[dict[str, Any]]) -> dict[str, StageColumns]:
    """Records grouped by stage, as columns: the per-record work, done in the tailing thread."""
    groups: dict[str, tuple[int, list, list]] = {}
    for record in records:
        stage = record.get("stage")
        if not isinstance(stage, str) or not stage:
            continue
        group = groups.get(stage)
        if group is None:
            index = num(record.get("stage_index"))
            group = groups[stage] = (-1 if index is None else int(index), [], [])
        (group[2] if record.get("kind") == "epoch" else group[1]).append(record)
    return {
        stage: StageColumns(
            index, {k: _floats(train, k) for k in TRAIN_COLUMNS}, {k: _floats(epochs, k) for k in EPOCH_COLUMNS}
        )
        for stage, (index, train, epochs) in groups.items()
    }


class Series:
    """One plotted series of a stage (finite points of a metric against step or epoch, smoothed or
    not), kept in parts like the columns it comes from and extended as they grow."""

    def __init__(self, source: str, steps_per_epoch: float | None) -> None:
        self.source, self.steps_per_epoch = source, steps_per_epoch
        self.heads = 0  # the column parts put in front that are already in the series
        self.done = 0  # the appended column values already in the series
        self.xs, self.ys = Column(), Column()
        self.state: tuple[float, float] | None = None  # the EMA's, when smoothed

    def __len__(self) -> int:
        return len(self.ys)

    def last(self) -> float | None:
        """The last point's value (None when empty)."""
        value = self.ys.last()
        return None if value is None else float(value)


class StageCurves:
    """The metrics of one stage as growing columns, and the plotted series computed from them."""

    def __init__(self, name: str, index: int):
        self.name, self.index = name, index
        self.train: dict[str, Column] = {k: Column() for k in TRAIN_COLUMNS}
        self.epochs: dict[str, Column] = {k: Column() for k in EPOCH_COLUMNS}
        self.version = 0  # bumped by every change
        self._finite: dict[tuple[str, str], bool] = {}
        self._series: dict[tuple[str, str, float], Series] = {}
        self._spe: float | None = None

    def add(self, record: dict[str, Any]) -> None:
        columns = columnize([dict(record, stage=self.name)])
        if columns:
            self.extend(next(iter(columns.values())))

    def extend(self, cols: StageColumns, *, older: bool = False) -> None:
        """Add the columns' values after the existing ones (``older``: before them)."""
        for source, target, new in (("train", self.train, cols.train), ("epochs", self.epochs, cols.epochs)):
            for key, values in new.items():
                if older:
                    target[key].prepend(values)
                else:
                    target[key].append(values)
                if len(values) and not self._finite.get((source, key)):
                    self._finite[(source, key)] = bool(np.isfinite(values).any())
        self.version += 1
        if older:
            self._spe = None  # an earlier epoch line may come first now

    def __len__(self) -> int:
        return len(self.train["step"]) + len(self.epochs["step"])

    def column(self, source: str, key: str) -> np.ndarray:
        """``self.train[key]`` or ``self.epochs[key]`` as one float array (a copy if in parts)."""
        return (self.epochs if source == "epochs" else self.train)[key].array()

    @property
    def steps_per_epoch(self) -> float | None:
        if self._spe is None:
            steps, epochs = self.column("epochs", "step"), self.column("epochs", "epoch")
            found = np.flatnonzero((steps > 0) & (epochs > 0))
            if len(found):
                self._spe = float(steps[found[0]] / epochs[found[0]])
        return self._spe

    def last_train_step(self) -> float | None:
        """The step of the last train line (None when there is none)."""
        value = self.train["step"].last()
        return None if value is None else float(value)

    def has(self, metric: str) -> bool:
        return len(self.series(metric)) > 0

    def _source(self, metric: str) -> str:
        if metric in EPOCH_ONLY or not self._finite.get(("train", metric)):
            return "epochs"  # epoch-only metric, or no train lines (log_every > steps per stage)
        return "train"

    def series(self, metric: str, x_axis: str = "step", smoothing: float = 0.0) -> Series:
        """The points of ``metric`` against ``x_axis`` ("step" or "epoch"), finite values only.

        Cached per (metric, x axis, smoothing) and extended by the new values only; older values put
        in front add their points in front (a smoothed series, whose every value depends on the
        ones before it, is computed again then).
        """
        smoothing = smoothing if metric in SMOOTHABLE else 0.0
        source = self._source(metric)
        columns = self.epochs if source == "epochs" else self.train
        spe = self.steps_per_epoch if x_axis == "epoch" and source == "train" else None
        key = (metric, x_axis, smoothing)
        series = self._series.get(key)
        heads = columns["step"].head_parts
        if (
            series is None
            or (series.source, series.steps_per_epoch) != (source, spe)
            or (smoothing and series.heads != heads)
        ):
            series = self._series[key] = Series(source, spe)
            if smoothing:  # from the start, in order, carrying the average along
                for i in range(heads):
                    self._extend(series, columns, metric, x_axis, smoothing, i, append=True)
                series.heads = heads
        for i in reversed(range(heads - series.heads)):  # parts put in front since: newest first
            self._extend(series, columns, metric, x_axis, smoothing, i, append=False)
        series.heads = heads
        if series.done < len(columns["step"].tail()):
            self._extend(series, columns, metric, x_axis, smoothing, None, append=True)
        return series

    def _extend(
        self,
        series: Series,
        columns: dict[str, Column],
        metric: str,
        x_axis: str,
        smoothing: float,
        part: int | None,
        *,
        append: bool,
    ) -> None:
        """Add the points of one column part (``part`` None: the appended values not yet added)."""

        def values(key: str) -> np.ndarray:
            column = columns[key]
            return column.head_part(part) if part is not None else column.tail()[series.done :]

        ys, steps = values(metric), values("step")
        epochs = values("epoch") if x_axis == "epoch" and not series.steps_per_epoch else None
        if part is None:
            series.done += len(ys)
        if smoothing > 0:
            ys, series.state = ema_array(ys, smoothing, state=series.state)
        if epochs is not None:
            xs = epochs
        elif x_axis == "epoch":
            xs = steps / series.steps_per_epoch
        else:
            xs = steps
        keep = np.isfinite(xs) & np.isfinite(ys)
        if append:
            series.xs.append(xs[keep])
            series.ys.append(ys[keep])
        else:
            series.xs.prepend(xs[keep])
            series.ys.prepend(ys[keep])

    def xy(self, metric: str, x_axis: str = "step", smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`series` as two arrays (joined: a copy when in parts)."""
        series = self.series(metric, x_axis, smoothing)
        return series.xs.array(), series.ys.array()

    def rate(self, window: int = 50) -> float | None:
        """Training steps per second over the last ``window`` train lines (None when unknown)."""
        steps, times = self.train["step"].last(window), self.train["time"].last(window)
        keep = np.isfinite(steps) & np.isfinite(times)
        steps, times = steps[keep], times[keep]
        if len(steps) < 2:
            return None
        s0, s1, t0, t1 = steps[0], steps[-1], times[0], times[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        return float((s1 - s0) / (t1 - t0))


class RunCurves:
    """All stages of one run."""

    def __init__(self) -> None:
        self.stages: dict[str, StageCurves] = {}
        self.version = 0
        self.points = 0

    def add(self, records: list[dict[str, Any]]) -> None:
        """Add raw records (columnized here; the dashboard's worker columnizes them beforehand)."""
        self.add_columns(columnize(records))

    def add_columns(self, columns: dict[str, StageColumns], *, older: bool = False) -> None:
        """Add new records by stage (``older``: records from before those already added)."""
        for stage, cols in columns.items():
            curves = self.stages.get(stage)
            if curves is None:
                index = cols.index if cols.index >= 0 else len(self.stages)
                curves = self.stages[stage] = StageCurves(stage, index)
            curves.extend(cols, older=older)
            self.points += len(cols)
        if columns:
            self.version += 1

    def stage_names(self, summary: dict[str, Any] | None = None) -> list[str]:
        """The plan's stages (in order) then any other stage seen in the metrics."""
        names = [p["name"] for p in plan_of(summary or {})]
        extra = sorted((s for s in self.stages.values() if s.name not in names), key=lambda s: s.index)
        return names + [s.name for s in extra]

    def stage_version(self, stage: str | None) -> tuple[int, int] | None:
        """What changes when the stage's data does (None: no such stage)."""
        curves = self.stages.get(stage) if stage else None
        return None if curves is None else (id(curves), curves.version)


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
    """The best value of ``metric`` over every stage's epoch lines (None when there is none)."""
    best = None
    for stage in curves.stages.values():
        values = stage.column("epochs", metric)
        values = values[np.isfinite(values)]
        if len(values):
            best = float(values.max()) if best is None else max(best, float(values.max()))
    return best
