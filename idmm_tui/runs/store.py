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
import math
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.errors import CorruptFileError, FilesystemError, RunStateError, describe_os_error, not_utf8
from idmm_tui.fsutil import atomic_write_json, open_regular, read_text_file

RUN_MARKER = "idmm-run/1"
RECIPE_FILE = "recipe.toml"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "run.log"
CHECKPOINTS = "checkpoints"
LAST = "last"

STATUSES = ("running", "completed", "failed", "interrupted")
#: What ``idmm runs list`` shows for a run directory whose summary.json cannot be read.
UNREADABLE = "unreadable"

#: Run names: one path component that is safe in a shell and a terminal (sweep cells use '+' and '=').
RUN_NAME_MAX = 200
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")
_RUN_NAME_RULE = (
    f"use letters, digits, '-', '_', '.', '+' and '=' (starting with a letter or digit, at most {RUN_NAME_MAX} "
    "characters)"
)


def valid_run_name(name: Any) -> bool:
    """Whether ``name`` follows the run-name rule (see :func:`check_run_name`)."""
    return isinstance(name, str) and bool(_RUN_NAME.match(name)) and len(name) <= RUN_NAME_MAX and ".." not in name


def check_run_name(name: Any) -> str:
    """``name`` when it is a valid run name; a :class:`RunStateError` saying the rule otherwise."""
    if not valid_run_name(name):
        from idmm_tui.textsafe import safe_text

        shown = safe_text(name if len(str(name)) <= 80 else f"{str(name)[:60]}…({len(str(name))} characters)")
        raise RunStateError(f"invalid run name {shown!r}: {_RUN_NAME_RULE}")
    return name


def run_name_from(text: str) -> str:
    """A valid run name made from arbitrary text (a recipe's ``name``): other characters become '_'."""
    name = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._+=-]+", "_", text)).strip("._+=-")[: RUN_NAME_MAX - 40]
    return name or "run"


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
        """The summary as it is on disk, ``{}`` when missing or malformed (for writers and live viewers)."""
        return read_json(self.summary)

    def load_summary(self) -> dict[str, Any]:
        """The summary, checked: a :class:`CorruptFileError` saying why when it cannot be used
        (unreadable, not JSON, empty, or a field of the wrong type)."""
        return load_summary_file(self.summary)

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
        data = json.loads(read_text_file(Path(path)))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------------------------------------
# summary.json, checked


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _opt(check):
    return lambda v: v is None or check(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _dict_of(check):
    return lambda v: isinstance(v, dict) and all(isinstance(k, str) and check(x) for k, x in v.items())


def _list_of(check):
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _record(fields: dict[str, Any]):
    """A dict whose listed keys, when present, pass their checks (other keys are free)."""
    return lambda v: isinstance(v, dict) and all(k not in v or check(v[k]) for k, check in fields.items())


_METRIC = _opt(_is_num)
_STAGE_RESULT = _record(
    {
        "status": _is_str,
        "kind": _is_str,
        "epochs": _is_int,
        "resolution": _is_int,
        **{k: _METRIC for k in ("loss", "test_acc", "knn_acc", "images_per_s", "epoch", "step")},
    }
)
_PLAN_ENTRY = _record({"name": _is_str, "kind": _is_str, "epochs": _is_int, "resolution": _is_int})
#: The type of each known summary.json key (checked when present; unknown keys are left alone).
SUMMARY_FIELDS: dict[str, Any] = {
    "format": _is_str,
    "status": _is_str,
    "pid": _opt(_is_int),
    "pid_start": _opt(_is_str),
    "seed": _opt(_is_int),
    "world_size": _opt(_is_int),
    "nodes": _opt(_is_int),
    "hosts": _opt(_list_of(_is_str)),
    "launch": _opt(lambda v: isinstance(v, dict)),
    "test_acc": _METRIC,
    "wall_time_s": _METRIC,
    "plan": _list_of(_PLAN_ENTRY),
    "stages": _dict_of(_STAGE_RESULT),
    "current": _opt(
        _record(
            {
                "stage": _opt(_is_str),
                **{k: _METRIC for k in ("stage_index", "epoch", "epochs", "step", "total_steps")},
                **{k: _METRIC for k in ("loss", "images_per_s", "test_acc")},
            }
        )
    ),
    "knn_start": _opt(_dict_of(_METRIC)),
    "evals": _opt(_dict_of(_dict_of(_record({"test_acc": _METRIC})))),
    "overrides": _opt(_list_of(_is_str)),
    "cell": _opt(_dict_of(lambda v: True)),
    "lineage": _opt(lambda v: isinstance(v, dict)),
    **{
        k: _opt(_is_str)
        for k in (
            "name",
            "started_at",
            "updated_at",
            "finished_at",
            "idmm_version",
            "recipe_sha256",
            "backbone",
            "dataset",
            "method",
            "init",
            "host",
            "error",
            "group",
            "recipe_source",
        )
    },
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def summary_problem(data: Any) -> str | None:
    """Why ``data`` (parsed summary.json) cannot be used, or None when its known fields have their types."""
    if not isinstance(data, dict):
        return f"it holds {_kind(data)}, not an object"
    for key, check in SUMMARY_FIELDS.items():
        if key in data and not check(data[key]):
            return f"field {key!r} has the wrong type or shape ({_kind(data[key])})"
    for key in ("test_acc", "wall_time_s"):
        if _is_num(data.get(key)) and not math.isfinite(data[key]):
            return f"field {key!r} is not a finite number"
    return None


def load_summary_file(path: Path) -> dict[str, Any]:
    """A summary.json's content after :func:`summary_problem` (CorruptFileError naming the file and why)."""
    path = Path(path)
    try:
        text = read_text_file(path)
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing") from None
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{path} is unreadable: {not_utf8(exc)}") from None
    except OSError as exc:
        raise CorruptFileError(describe_os_error(exc, f"{path} is unreadable")) from None
    if not text.strip():
        raise CorruptFileError(f"{path} is unreadable: the file is empty")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptFileError(f"{path} is unreadable: not valid JSON ({exc})") from None
    problem = summary_problem(data)
    if problem:
        raise CorruptFileError(f"{path} is unreadable: {problem}")
    return data


def iter_metrics(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a metrics.jsonl, skipping blank, partial or malformed lines."""
    try:
        handle = open_regular(path, "r")  # not a FIFO / device: a reader never blocks on it
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
    """Whether a process with this pid exists on this machine (any process: see :func:`run_process_alive`)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """An identity of the process ``pid`` that a reused pid does not share: ``<boot id>:<start time>``.

    The start time is field 22 of ``/proc/<pid>/stat`` (clock ticks after boot); with the boot id a
    process started after a reboot differs too. None where it cannot be read (no /proc, or hidden).
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # the command name (field 2) may hold spaces
        start = fields[22 - 3]
    except (OSError, ValueError, IndexError):
        return None
    return f"{_boot_id()}:{start}"


def process_identity() -> dict[str, Any]:
    """What a run records about its own process: ``pid``, ``pid_start`` (see :func:`process_start`), ``host``."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "host": socket.gethostname()}


def run_process_alive(summary: dict[str, Any]) -> bool:
    """Whether the process that wrote ``summary`` still runs: its pid exists and, when the run recorded
    its process's start (``pid_start``), the process with that pid now is the same one.

    A run killed with -9 whose pid was later given to another process is therefore dead here, and
    nothing signals that stranger. (Summaries without ``pid_start``, from idmm 0.2 and before, fall
    back to the pid alone.)
    """
    pid = summary.get("pid")
    if not pid_alive(pid):
        return False
    recorded = summary.get("pid_start")
    if isinstance(recorded, str) and recorded:
        now = process_start(pid)
        return now is None or now == recorded
    return True


def effective_status(summary: dict[str, Any]) -> str:
    """The run's status, with a "running" run whose process is gone reported as "interrupted".

    (A run killed with SIGKILL, or whose machine rebooted, never got to write its own status.)
    """
    status = str(summary.get("status") or "unknown")
    here = summary.get("host") in (None, socket.gethostname())
    if status == "running" and here and summary.get("pid") is not None and not run_process_alive(summary):
        return "interrupted"
    return status


def check_runs_dir(runs_dir: Path) -> Path:
    """``runs_dir`` unless it exists as something other than a directory (FilesystemError)."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise FilesystemError(f"runs directory {runs_dir} is a file, not a directory; choose another --runs-dir")
    return runs_dir


def create_run_dir(runs_dir: Path, name: str) -> RunDir:
    """Make ``runs_dir/name``; refuses an existing one (nothing is touched then)."""
    check_run_name(name)
    path = runs_dir / name
    check_runs_dir(runs_dir)
    if path.exists():
        raise RunStateError(
            f"run directory {path} already exists; choose another --name, or resume it with 'idmm run --resume {path}'"
        )
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FilesystemError(describe_os_error(exc, f"cannot create the runs directory {runs_dir}")) from None
    try:
        path.mkdir()
    except FileExistsError:
        raise RunStateError(f"run directory {path} already exists (created concurrently)") from None
    except OSError as exc:
        raise FilesystemError(describe_os_error(exc, f"cannot create run directory {path}")) from None
    try:
        (path / CHECKPOINTS).mkdir()
    except OSError as exc:
        _remove_quietly(path)
        raise FilesystemError(describe_os_error(exc, f"cannot create run directory {path}")) from None
    return RunDir(path)


def _remove_quietly(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def open_run_dir(path: Path, *, unreadable_ok: bool = False) -> RunDir:
    """An existing run directory, or RunStateError when it is not one of ours.

    A directory with a recipe.toml whose summary.json cannot be read is one of ours, damaged:
    CorruptFileError saying why (or, with ``unreadable_ok``, returned for a listing to show).
    """
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise RunStateError(f"no run directory at {run.path}")
    if run.recipe.is_file() and run.summary.exists():
        try:
            summary = run.load_summary()
        except CorruptFileError:
            if unreadable_ok:
                return run
            raise
        if summary.get("format") == RUN_MARKER:
            return run
    raise RunStateError(
        f"{run.path} is not an idmm run directory (no {SUMMARY_FILE} with format {RUN_MARKER!r} "
        f"and {RECIPE_FILE}); refusing to touch it"
    )


def summary_or_problem(run: RunDir) -> tuple[dict[str, Any], str | None]:
    """(checked summary, None), or ({}, why it cannot be read): what listings and reports use."""
    try:
        return run.load_summary(), None
    except CorruptFileError as exc:
        return {}, str(exc).removeprefix(f"{run.summary} is ").removeprefix("unreadable: ")


def list_runs(runs_dir: Path) -> list[RunDir]:
    """Run directories directly under ``runs_dir``, newest first.

    Listed: ours (a summary.json with our format) and, last, ours but damaged (a recipe.toml beside a
    summary.json that cannot be read: see :func:`summary_or_problem`), so that a listing names them
    instead of dropping them.
    """
    if not runs_dir.is_dir():
        return []  # (the CLI says when it is a file: check_runs_dir)
    try:
        entries = sorted(runs_dir.iterdir())
    except OSError as exc:
        raise FilesystemError(describe_os_error(exc, f"cannot list the runs directory {runs_dir}")) from None
    keyed = []
    for path in entries:
        run = RunDir(path)
        if not path.is_dir() or not run.summary.exists():
            continue
        summary, problem = summary_or_problem(run)
        if problem is None and summary.get("format") == RUN_MARKER:
            started = summary.get("started_at")
            keyed.append(((1, started if isinstance(started, str) else "", run.name), run))
        elif problem is not None and run.recipe.is_file():
            keyed.append(((0, "", run.name), run))
    return [run for _, run in sorted(keyed, key=lambda item: item[0], reverse=True)]


def remove_stale_temps(folder: Path, older_than_s: float = 0.0) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes (``.<name>.<random>.tmp``) in ``folder``.

    Only for folders no other process writes to now (a run being resumed), or with ``older_than_s``
    set well past any write's duration. Returns what was removed.
    """
    removed = []
    now = time.time()
    try:
        candidates = list(Path(folder).glob(".*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            if tmp.is_file() and now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            pass
    return removed


def resolve_run(ref: str, runs_dir: Path, *, unreadable_ok: bool = False) -> RunDir:
    """A run given as a path or as a name under ``runs_dir`` (see :func:`open_run_dir`)."""
    candidate = Path(ref).expanduser()
    if not candidate.is_dir():
        candidate = runs_dir / ref
    return open_run_dir(candidate, unreadable_ok=unreadable_ok)
