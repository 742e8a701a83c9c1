"""Starting, resuming and stopping training processes from the dashboard (no Textual here).

The TUI runs exactly what a user would type: ``python -m idmm_tui run RECIPE --runs-dir DIR --name
NAME --set …`` (or ``run --resume DIR``) as a detached background process, so a run launched from
the dashboard outlives it and looks the same as one started from another terminal. Stopping is the
trainer's own graceful path: SIGTERM to the ``pid`` in ``summary.json`` (a DDP run: to every rank on
this machine, as the run recorded them; ranks elsewhere stop with them at the next sync point); it
finishes the current step, writes a checkpoint and marks the run "interrupted". A DDP run resumes
with the launcher and world size it was started with (``runs.launcher.resume_command``: the recorded
torchrun command line), or the dashboard says why it cannot (several nodes, a cluster job).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from idmm_tui.errors import RunStateError
from idmm_tui.runs.launcher import launch_of, resume_command
from idmm_tui.runs.spawn import spawn_detached
from idmm_tui.runs.store import run_process_alive
from idmm_tui.tui.summary import on_this_host, run_status

#: Where the dashboard keeps the stdout/stderr of the processes it starts (the run directory itself
#: does not exist yet when the process starts: ``idmm run`` creates it and refuses an existing one).
OUTPUT_DIR = ".idmm-tui"


def output_path(runs_dir: Path, name: str, suffix: str = "") -> Path:
    return Path(runs_dir) / OUTPUT_DIR / f"{name}{suffix}.out"


def launch_run(recipe: Path, runs_dir: Path, name: str, overrides: list[str]) -> tuple[subprocess.Popen, Path]:
    """Start ``idmm run RECIPE`` in the background; returns the process and its output file."""
    args = ["run", str(recipe), "--runs-dir", str(runs_dir), "--name", name]
    for item in overrides:
        args += ["--set", item]
    out = output_path(runs_dir, name)
    return spawn_detached(args, out), out


def resume_run(run_path: Path, summary: dict[str, Any]) -> tuple[subprocess.Popen, Path]:
    """Start ``idmm run --resume RUN`` in the background (the trainer re-checks everything), under the
    launcher the run was started with (``torchrun --nproc_per_node 2 …`` for a DDP run)."""
    status = run_status(summary)
    if status == "completed":
        raise RunStateError(f"{run_path.name} already completed; nothing to resume")
    if status == "running":
        raise RunStateError(f"{run_path.name} is still running (pid {summary.get('pid')}); stop it first")
    if status not in ("interrupted", "failed"):
        raise RunStateError(f"{run_path.name} has status {status!r}; only interrupted or failed runs resume")
    command, why = resume_command(summary, run_path)
    if command is None:
        raise RunStateError(f"{run_path.name} cannot be resumed from here: {why}")
    out = output_path(run_path.parent, run_path.name, "-resume")
    return spawn_detached(["run", "--resume", str(run_path)], out, command=command), out


def stop_run(run_path: Path, summary: dict[str, Any]) -> int:
    """Ask the run's process to stop gracefully (SIGTERM; a DDP run's other ranks on this machine too);
    returns the pid of rank 0."""
    status = run_status(summary)
    if status != "running":
        raise RunStateError(f"{run_path.name} is not running (status {status})")
    pid = summary.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise RunStateError(f"{run_path.name} has not reported a process id yet; try again in a moment")
    if not on_this_host(summary):
        raise RunStateError(f"{run_path.name} runs on host {summary.get('host')}; stop it there")
    if not run_process_alive(summary):  # gone, or its pid now belongs to another process: never signal that
        raise RunStateError(f"process {pid} of {run_path.name} is gone")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        raise RunStateError(f"process {pid} of {run_path.name} is gone") from None
    except PermissionError:
        raise RunStateError(f"not allowed to signal process {pid} of {run_path.name}") from None
    for rank in other_ranks_here(summary):  # each stops at the same sync point as rank 0
        try:
            os.kill(rank, signal.SIGTERM)
        except OSError:
            pass
    return pid


def other_ranks_here(summary: dict[str, Any]) -> list[int]:
    """The pids of the run's other DDP ranks on this machine that are still those processes."""
    ranks = launch_of(summary).get("ranks")
    out = []
    for r in ranks if isinstance(ranks, list) else []:
        if not isinstance(r, dict) or r.get("rank") == 0 or not on_this_host(r):
            continue
        if isinstance(r.get("pid"), int) and run_process_alive(r):  # its pid and start time still match
            out.append(r["pid"])
    return out


def stopped_gracefully(run_path: Path) -> bool:
    """Whether the run says it was interrupted (read once, when a process the dashboard started ended)."""
    from idmm_tui.runs.store import read_json

    return read_json(Path(run_path) / "summary.json").get("status") == "interrupted"


def read_tail(path: Path, max_bytes: int = 4096) -> str:
    """The end of a text file ('' when unreadable)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
