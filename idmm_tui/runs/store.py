"""The run directory: the only interface between a training process and any viewer.

Layout of ``<runs dir>/<name>/``::

    recipe.toml            the fully resolved recipe (reproduces the run on its own)
    summary.json           status, current position, per-stage final metrics, wall time, test_acc
    metrics.jsonl          one JSON object per line (stage, epoch, step, loss, lr, images_per_s[, test_acc])
    run.log                human-readable log lines
    checkpoints/last.*     resumable state (safetensors + JSON)
    checkpoints/<stage>.*  final weights of each finished stage (backbone + head)

Writers: only the training process (rank 0). Readers (``idmm runs``, the TUI) never lock anything
and skip malformed or partial lines.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.errors import RunStateError
from idmm_tui.fsutil import atomic_write_json

RUN_MARKER = "idmm-run/1"
RECIPE_FILE = "recipe.toml"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "run.log"
CHECKPOINTS = "checkpoints"
LAST = "last"

STATUSES = ("running", "completed", "failed", "interrupted")


def default_runs_dir() -> Path:
    """``$IDMM_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("IDMM_RUNS_DIR") or "runs").expanduser()


def runs_dir_or_default(value: Path | str | None) -> Path:
    """The runs directory a command was given (``--runs-dir``), or :func:`default_runs_dir`."""
    return Path(value).expanduser() if value else default_runs_dir()


def now_iso() -> str:
    """Local time as the run files record it (``2026-11-26T12:00:00+0000``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def finished_stages(summary: dict[str, Any]) -> list[str]:
    """Stage names of the run's plan whose final weights were written, in plan order."""
    stages = summary.get("stages") or {}
    if not isinstance(stages, dict):
        return []
    return [
        p["name"]
        for p in summary.get("plan") or []
        if isinstance(p, dict)
        and isinstance(stages.get(p.get("name")), dict)
        and stages[p["name"]].get("status") == "completed"
    ]


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log(self) -> Path:
        return self.path / LOG_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def checkpoint(self, stem: str) -> Path:
        return self.checkpoints / stem

    def stage_weights(self, stage: str) -> Path:
        return self.checkpoints / f"{stage}.safetensors"

    # -- summary -------------------------------------------------------------------------------

    def read_summary(self) -> dict[str, Any]:
        return read_json(self.summary)

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary, summary)

    def is_run(self) -> bool:
        return self.read_summary().get("format") == RUN_MARKER

    # -- metrics and log -----------------------------------------------------------------------

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
            handle.flush()

    def append_log(self, line: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {line}\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        return list(iter_metrics(self.metrics))

    def truncate_metrics(self, stage_index: int, step: int) -> int:
        """Drop lines past (stage_index, step): the part of a run that a resume will redo.

        Returns how many lines were dropped. Rewritten atomically.
        """
        if not self.metrics.exists():
            return 0
        keep, dropped = [], 0
        for record in iter_metrics(self.metrics):
            position = (record.get("stage_index", 0), record.get("step", 0))
            if position <= (stage_index, step):
                keep.append(json.dumps(record, separators=(",", ":")))
            else:
                dropped += 1
        from idmm_tui.fsutil import atomic_write_text

        atomic_write_text(self.metrics, "".join(line + "\n" for line in keep))
        return dropped


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, ``{}`` when missing or malformed (viewers never crash on it)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def iter_metrics(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a metrics.jsonl, skipping blank, partial or malformed lines."""
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed by the with below
    except OSError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # a line still being written
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def pid_alive(pid: Any) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def effective_status(summary: dict[str, Any]) -> str:
    """The run's status, with a "running" run whose process is gone reported as "interrupted".

    (A run killed with SIGKILL, or whose machine rebooted, never got to write its own status.)
    """
    status = str(summary.get("status") or "unknown")
    here = summary.get("host") in (None, socket.gethostname())
    if status == "running" and here and summary.get("pid") is not None and not pid_alive(summary.get("pid")):
        return "interrupted"
    return status


def create_run_dir(runs_dir: Path, name: str) -> RunDir:
    """Make ``runs_dir/name``; refuses an existing one (nothing is touched then)."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise RunStateError(f"invalid run name {name!r}: use letters, digits, '-', '_' and '.'")
    path = runs_dir / name
    if path.exists():
        raise RunStateError(
            f"run directory {path} already exists; choose another --name, or resume it with 'idmm run --resume {path}'"
        )
    runs_dir.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        raise RunStateError(f"run directory {path} already exists (created concurrently)") from None
    (path / CHECKPOINTS).mkdir()
    return RunDir(path)


def open_run_dir(path: Path) -> RunDir:
    """An existing run directory, or RunStateError when it is not one of ours."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise RunStateError(f"no run directory at {run.path}")
    if not run.is_run() or not run.recipe.is_file():
        raise RunStateError(
            f"{run.path} is not an idmm run directory (no {SUMMARY_FILE} with format {RUN_MARKER!r} "
            f"and {RECIPE_FILE}); refusing to touch it"
        )
    return run


def list_runs(runs_dir: Path) -> list[RunDir]:
    """Run directories directly under ``runs_dir``, newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [RunDir(p) for p in runs_dir.iterdir() if p.is_dir() and (p / SUMMARY_FILE).is_file()]
    runs = [r for r in runs if r.is_run()]
    return sorted(runs, key=lambda r: str(r.read_summary().get("started_at") or ""), reverse=True)


def resolve_run(ref: str, runs_dir: Path) -> RunDir:
    """A run given as a path or as a name under ``runs_dir``."""
    candidate = Path(ref).expanduser()
    if not candidate.is_dir():
        candidate = runs_dir / ref
    return open_run_dir(candidate)
