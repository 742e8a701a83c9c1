"""The sink interface, the mapping of idmm's run files onto scalars and hyper-parameters, and the
composite :class:`Tracker` the trainer calls.

Every sink gets the same calls, in order: ``start`` (once), then any number of ``record`` (one
metrics.jsonl line), ``stage`` (a stage started or finished) and ``artifact`` (a PNG), then
``finish`` (the final summary.json). The :class:`Tracker` runs them on one background thread: the
training loop only puts an event on a queue (no I/O, no waiting), a sink that raises is switched off
with one warning, and ``close`` waits at most ``flush_timeout_s`` for the sinks to catch up.
"""

from __future__ import annotations

import importlib.util
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.runs.store import RunDir, read_json

#: Sink name -> (module under idmm_tui.tracking, the library it needs, the pip extra that installs it).
SINKS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("tensorboard_sink", "tensorboard", "tensorboard"),
    "mlflow": ("mlflow_sink", "mlflow", "mlflow"),
    "wandb": ("wandb_sink", "wandb", "wandb"),
}
#: Where a run directory keeps what each sink needs to find its mirror again (MLflow run id, W&B id…).
STATE_FILE = "tracking.json"
#: metrics.jsonl keys that are coordinates, not values.
_NOT_SCALARS = ("kind", "stage", "stage_index", "step")


def missing_library(sink: str) -> str | None:
    """``pip install 'idmm[extra]'`` advice when the sink's library is not importable, else None."""
    _, library, extra = SINKS[sink]
    if importlib.util.find_spec(library) is None:
        return f"tracking: {sink} is not installed: pip install 'idmm[{extra}]' (the run goes on without it)"
    return None


def scalars(record: dict[str, Any]) -> tuple[int, dict[str, float]]:
    """One metrics.jsonl record as (step, {tag: value}): tags ``<stage>/<kind>/<key>`` (``pretrain/train/loss``,
    ``finetune_224/epoch/test_acc``), the step the record's own (optimiser steps in its stage)."""
    stage, kind = str(record.get("stage", "run")), str(record.get("kind", "train"))
    values = {}
    for key, value in record.items():
        if key in _NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            values[f"{stage}/{kind}/{key}"] = float(value)
    return int(record.get("step", 0)), values


def hyperparameters(recipe: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """The resolved recipe as flat ``dotted.key -> value`` hyper-parameters (lists as text)."""
    from idmm_tui.recipe import recipe_keys

    out: dict[str, str | int | float | bool] = {}
    for key, value in recipe_keys(recipe).items():  # without [track]: where a run is mirrored is no hyper-parameter
        out[key] = value if isinstance(value, str | int | float | bool) else str(value)
    return out


@dataclass
class Settings:
    """Where the sinks write (from the recipe's ``[track]`` table, or ``idmm export``'s options)."""

    dir: Path  # local stores: <dir>/tensorboard/…, <dir>/mlruns, <dir>/wandb
    mlflow_uri: str = ""
    mlflow_experiment: str = ""
    wandb_project: str = "idmm"
    wandb_entity: str = ""
    wandb_group: str = ""
    wandb_mode: str = "auto"


@dataclass
class StartInfo:
    """What a sink is started with."""

    run: RunDir
    recipe: dict[str, Any]  # the resolved recipe as a TOML table
    summary: dict[str, Any]
    settings: Settings
    previous: dict[str, Any] = field(default_factory=dict)  # this sink's entry of tracking.json, if any
    fresh: bool = False  # idmm export: a new mirror (never continue the live one)

    @property
    def group(self) -> str:
        return str(self.summary.get("group") or "")


class Sink:
    """One destination. Subclasses implement the methods they need; all run on the tracker's thread."""

    name = "sink"

    def start(self, info: StartInfo) -> dict[str, Any]:
        """Open the destination; returns what finds it again (kept in the run's tracking.json)."""
        raise NotImplementedError

    def record(self, record: dict[str, Any]) -> None:
        pass

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        """``event`` is ``started`` (info: epochs, resolution, total_steps) or ``completed`` (its final metrics)."""

    def artifact(self, path: Path, name: str) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def abort(self) -> None:
        """Release what ``start`` opened after a failure (best effort; the sink is not called again)."""


def make_sink(name: str) -> Sink:
    """A new sink by name (imports its module, which imports its library only when started)."""
    import importlib

    module = importlib.import_module(f"idmm_tui.tracking.{SINKS[name][0]}")
    return module.SINK()


def read_state(run: RunDir) -> dict[str, Any]:
    return read_json(run.path / STATE_FILE)


def write_state(run: RunDir, name: str, entry: dict[str, Any]) -> None:
    from idmm_tui.fsutil import atomic_write_json

    state = read_state(run)
    state[name] = entry
    atomic_write_json(run.path / STATE_FILE, state)


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class Tracker:
    """The sinks of one run behind one object, fed from a background thread.

    Calls from the training loop only enqueue; a sink that raises (server down, no login, disk full)
    is dropped with one warning naming it and the run goes on: metrics.jsonl stays the record
    (``idmm export RUN --to SINK`` mirrors it later). Warnings are handed to ``warn`` on the caller's
    thread, at its next call.
    """

    def __init__(
        self,
        run: RunDir,
        recipe: dict[str, Any],
        sinks: list[Sink],
        settings: Settings,
        *,
        warn: Callable[[str], None],
        flush_timeout_s: float = 30.0,
    ):
        self.run, self.recipe, self.sinks, self.settings = run, recipe, sinks, settings
        self.warn, self.flush_timeout_s = warn, flush_timeout_s
        self._dead: set[str] = set()
        self._warnings: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._queue: queue.SimpleQueue[tuple[str, tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="idmm-tracking", daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sinks]

    # -- the trainer's side: enqueue only ------------------------------------------------------------

    def _put(self, method: str, *args: Any) -> None:
        self._flush_warnings()
        if not self._closed:
            self._queue.put((method, args))

    def start(self, summary: dict[str, Any]) -> None:
        self._put("start", dict(summary))

    def record(self, record: dict[str, Any]) -> None:
        self._put("record", dict(record))

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        self._put("stage", event, stage, dict(info))

    def artifact(self, path: Path, name: str | None = None) -> None:
        self._put("artifact", Path(path), name or Path(path).stem)

    def finish(self, summary: dict[str, Any]) -> None:
        """Send the final summary, then wait (at most ``flush_timeout_s``) for the sinks to finish."""
        self._put("finish", dict(summary))
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(self.flush_timeout_s)
        self._flush_warnings()
        if self._thread.is_alive():
            slow = ", ".join(n for n in self.names if n not in self._dead)
            self.warn(
                f"tracking: gave up waiting for {slow} after {self.flush_timeout_s:g} s "
                f"(metrics.jsonl is complete; mirror it later with: idmm export {self.run.path} --to …)"
            )

    def _flush_warnings(self) -> None:
        while True:
            try:
                text = self._warnings.get_nowait()
            except queue.Empty:
                return
            try:
                self.warn(text)
            except Exception:  # noqa: BLE001 - a warning must never stop training
                pass

    # -- the worker's side ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            method, args = item
            for sink in self.sinks:
                if sink.name in self._dead:
                    continue
                try:
                    if method == "start":
                        previous = read_state(self.run).get(sink.name) or {}
                        info = StartInfo(self.run, self.recipe, args[0], self.settings, previous)
                        entry = sink.start(info)
                        if entry:
                            write_state(self.run, sink.name, entry)
                    else:
                        getattr(sink, method)(*args)
                except BaseException as exc:  # noqa: BLE001 - never into training
                    self._dead.add(sink.name)
                    self._warnings.put(
                        f"tracking: {sink.name} stopped ({describe(exc)}); the run goes on, metrics.jsonl has "
                        f"everything: idmm export {self.run.path} --to {sink.name}"
                    )
                    try:
                        sink.abort()
                    except BaseException:  # noqa: BLE001
                        pass


class NullTracker:
    """No sinks: every call does nothing (runs without ``[track]``, ranks other than 0)."""

    names: list[str] = []

    def start(self, summary: dict[str, Any]) -> None:
        pass

    def record(self, record: dict[str, Any]) -> None:
        pass

    def stage(self, event: str, stage: str, info: dict[str, Any]) -> None:
        pass

    def artifact(self, path: Path, name: str | None = None) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
