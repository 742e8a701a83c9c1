"""The callable a cluster job runs for one sweep cell (imported only with submitit installed).

Every task of the job (one per GPU, srun-placed) runs ``python -m idmm_tui run …`` as a child process
with torch's env:// variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
when the cell has several tasks; ``idmm run`` then trains DDP, rank 0 writing the run directory.

Preemption and time limits: SLURM sends USR2 ``signal_delay_s`` before it kills the job; submitit's
handler (rank 0) calls :meth:`CellJob.checkpoint`, which sends SIGTERM to ``idmm run`` — the trainer's
own graceful stop: it finishes the step (DDP: all ranks at the next sync point), writes its checkpoint
and exits 130 — waits for it, and returns the same cell set to resume; submitit requeues the job,
whose next attempt runs ``idmm run --resume`` (the run's exact resume). The child ignores USR2 itself
(SLURM signals every process of the step) and gets SIGTERM if its task dies (PR_SET_PDEATHSIG).

A new attempt starts or resumes from what the run directory says: a job SLURM requeued on its own
(a node failure) still resumes. Every task decides before any child starts, so all ranks decide alike
(rank 0's child creates the run directory only seconds later, after importing torch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from idmm_tui.experiments.cluster import release_stale_run
from idmm_tui.runs.store import read_json

_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # pragma: no cover - runs in the forked child
    signal.signal(submitit.JobEnvironment._usr_sig(), signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it (the task's own wait does that)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop_child(pid: int, timeout_s: float) -> bool:
    """SIGTERM to ``idmm run`` (a graceful stop: checkpoint, exit 130); wait up to ``timeout_s`` for it."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.2)
    return False


class CellJob(Checkpointable):
    """``idmm run`` of one sweep cell, as a checkpointable submitit job."""

    def __init__(
        self,
        name: str,
        run_path: str,
        start_args: list[str],
        *,
        group: str,
        resume: bool = False,
        takeover: set[str] | None = None,
        stop_timeout_s: float = 60.0,
        attempt: int = 1,
    ) -> None:
        self.name = name
        self.run_path = run_path
        self.start_args = list(start_args)
        self.group = group
        self.resume = resume
        self.takeover = set(takeover or ())
        self.stop_timeout_s = stop_timeout_s
        self.attempt = attempt
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_proc"] = None
        return state

    def command(self) -> list[str]:
        resume = self.resume or (Path(self.run_path) / "summary.json").exists()
        args = ["run", "--resume", self.run_path] if resume else self.start_args
        return [sys.executable, "-m", "idmm_tui", *args]

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "IDMM_SWEEP_GROUP": self.group, "PYTHONUNBUFFERED": "1"}
        job = submitit.JobEnvironment()
        if job.num_tasks > 1:  # DDP over the job's tasks: torch's env:// rendezvous
            dist = submitit.helpers.TorchDistributedEnvironment()
            env.update(
                MASTER_ADDR=str(dist.master_addr),
                MASTER_PORT=str(dist.master_port),
                RANK=str(dist.rank),
                WORLD_SIZE=str(dist.world_size),
                LOCAL_RANK=str(dist.local_rank),
                LOCAL_WORLD_SIZE=str(dist.local_world_size),
            )
        return env

    def __call__(self) -> dict[str, Any]:
        job = submitit.JobEnvironment()
        command = self.command()
        release_stale_run(Path(self.run_path), {str(job.job_id), *self.takeover})
        print(
            f"idmm cell {self.name}, attempt {self.attempt}, task {job.global_rank}/{job.num_tasks}: "
            f"{' '.join(command)}",
            flush=True,
        )
        proc = self._proc = subprocess.Popen(command, env=self.environment(), preexec_fn=_child_setup)
        try:
            while (code := proc.poll()) is None:
                time.sleep(0.5)
        except KeyboardInterrupt:  # the local executor's cancel: stop with a checkpoint, then end
            stop_child(proc.pid, self.stop_timeout_s)
            raise
        summary = read_json(Path(self.run_path) / "summary.json")
        if code == 0:
            return {"cell": self.name, "status": "completed", "test_acc": summary.get("test_acc")}
        if code == 130:
            return {"cell": self.name, "status": "interrupted"}
        error = summary.get("error") if isinstance(summary.get("error"), str) else ""
        raise RuntimeError(f"cell {self.name}: idmm run exited with {code}{': ' + error if error else ''}")

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Preempted or at the time limit: stop ``idmm run`` with a checkpoint, then requeue as a resume."""
        proc = self._proc
        if proc is not None:
            stopped = stop_child(proc.pid, self.stop_timeout_s)
            print(f"idmm cell {self.name}: {'checkpointed' if stopped else 'still stopping'}; requeued", flush=True)
        again = CellJob(
            self.name,
            self.run_path,
            self.start_args,
            group=self.group,
            resume=True,
            takeover=self.takeover,
            stop_timeout_s=self.stop_timeout_s,
            attempt=self.attempt + 1,
        )
        return DelayedSubmission(again)
