"""Sweeps on a SLURM cluster through submitit: one job per cell, requeued with an exact resume.

``idmm sweep RECIPE --axis … --executor slurm --partition P --gpus-per-node G --nodes N --time 24:00:00``
submits every cell as a job (the cells that can start together as one job array, ``--max-parallel``
of them at once). A job runs ``idmm run`` for its cell: one task per GPU, placed by srun, so a cell of
several GPUs or nodes is DDP over ``G × N`` processes joined through torch's env:// rendezvous
(``submitit.helpers.TorchDistributedEnvironment``). The job's callable (:class:`~idmm_tui.experiments.
slurm_job.CellJob`) is a ``submitit.helpers.Checkpointable``: on preemption, or ``signal_delay_s`` before
the time limit, SLURM signals the job (USR2); the callable stops ``idmm run`` gracefully (it writes its
checkpoint) and submitit requeues the job, whose next start is ``idmm run --resume`` — the run's own exact
resume. Transfer sweeps submit the fine-tuning cells with a dependency on their pretraining job.

``--executor submitit-local`` runs the same jobs with submitit's local executor (processes on this
machine, the same pickled callable, signals and requeue): the SLURM path without a cluster, and what
the tests exercise. It always waits for its jobs.

The sweep manifest (``RUNS/sweeps/GROUP.json``) records the executor (``executor``: kind, folder,
parameters) and per cell (``jobs``) the job id, its stdout / stderr files and the job's state as last
seen: ``idmm sweep --group G --status`` refreshes and shows them, ``--cancel`` cancels through submitit.
Nothing here is imported without ``--executor``: submitit is an optional extra (``pip install 'idmm[slurm]'``).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idmm_tui.errors import UsageError
from idmm_tui.experiments.groups import Cell, Group
from idmm_tui.runs.store import RunDir, effective_status, now_iso, process_start, read_json, run_process_alive

#: ``--executor`` value -> submitit executor.
EXECUTORS = {"slurm": "slurm", "submitit-local": "local"}
#: Job states after which the job runs no more (SLURM's, and submitit's local ones).
TERMINAL = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "TIMEOUT",
    "FINISHED",
    "INTERRUPTED",
    "ENDED",
    "NO PROCESS AND NO RESULT",
}
#: Requeues after the time limit before a job gives up (preemptions do not count).
MAX_TIMEOUTS = 10


def require_submitit():
    try:
        import submitit
    except ImportError:
        raise UsageError(
            "--executor slurm / submitit-local needs submitit: pip install 'idmm[slurm]' (or pip install submitit)"
        ) from None
    return submitit


def parse_time(text: str) -> int:
    """A SLURM time limit in minutes: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise UsageError(f"--time {text!r}: use HH:MM:SS, D-HH:MM:SS or minutes (as sbatch --time)")
    days, a, b, c = match.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = int(days) * 1440 + int(a) * 60 + int(b or 0) + (int(c) > 0 if c else 0)
    elif c is not None:  # HH:MM:SS
        minutes = int(a) * 60 + int(b) + (int(c) > 0)
    elif b is not None:  # MM:SS
        minutes = int(a) + (int(b) > 0)
    else:
        minutes = int(a)
    if minutes < 1:
        raise UsageError(f"--time {text!r}: at least one minute")
    return minutes


def _value(text: str) -> Any:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_items(items: list[str]) -> dict[str, Any]:
    """``--slurm KEY=VALUE`` items (``setup`` and ``srun_args`` may repeat: a list)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--slurm expects KEY=VALUE (e.g. mem=64G, constraint=a100), got {item!r}")
        if key in ("setup", "srun_args", "teardown"):
            out.setdefault(key, []).append(value)
        else:
            out[key] = _value(value)
    return out


@dataclass
class ClusterOptions:
    """What ``idmm sweep --executor …`` asked for: the shape of every cell's job."""

    executor: str  # slurm | submitit-local
    time_min: int
    partition: str | None = None
    gpus_per_node: int = 0
    nodes: int = 1
    account: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 1

    @classmethod
    def parse(
        cls,
        executor: str,
        *,
        partition: str | None,
        gpus_per_node: int,
        nodes: int,
        time: str,
        account: str | None,
        items: list[str],
        max_parallel: int,
    ) -> ClusterOptions:
        require_submitit()
        if nodes < 1 or gpus_per_node < 0 or max_parallel < 1:
            raise UsageError("--nodes and --max-parallel must be 1 or more, --gpus-per-node 0 or more")
        if executor == "submitit-local" and nodes > 1:
            raise UsageError("--executor submitit-local runs on this machine: --nodes 1 (use torchrun for nodes)")
        options = cls(executor, parse_time(time), partition, gpus_per_node, nodes, account, parse_items(items))
        options.max_parallel = max_parallel
        options.parameters()  # unknown keys are an error now, not at submission
        return options

    @property
    def tasks_per_node(self) -> int:
        """One task (process) per GPU; ``--slurm ntasks_per_node=N`` sets it (e.g. CPU tasks)."""
        return int(self.extra.get("ntasks_per_node", self.extra.get("tasks_per_node", max(1, self.gpus_per_node))))

    @property
    def world_size(self) -> int:
        return self.tasks_per_node * self.nodes

    @property
    def signal_delay_s(self) -> int:
        return int(self.extra.get("signal_delay_s", 120))

    def parameters(self, job_name: str = "idmm") -> dict[str, Any]:
        """``update_parameters`` of the submitit executor (sbatch's names for SLURM)."""
        if self.executor == "submitit-local":
            params: dict[str, Any] = {
                "timeout_min": self.time_min,
                "tasks_per_node": self.tasks_per_node,
                "signal_delay_s": self.signal_delay_s,
            }
            if self.gpus_per_node:
                params["gpus_per_node"] = self.gpus_per_node
            if self.extra.get("setup"):
                params["setup"] = self.extra["setup"]
            return params
        from submitit import SlurmExecutor

        known = SlurmExecutor._valid_parameters()
        params = {
            "job_name": job_name,
            "time": self.time_min,
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks_per_node,
            "signal_delay_s": self.signal_delay_s,
            "array_parallelism": self.max_parallel,
        }
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.partition:
            params["partition"] = self.partition
        if self.account:
            params["account"] = self.account
        additional: dict[str, Any] = {}
        for key, value in self.extra.items():
            if key in ("tasks_per_node", "max_num_timeout"):
                continue
            if key in known:
                params[key] = value
            else:
                additional[key.replace("_", "-")] = value
        if additional:
            params["additional_parameters"] = additional
        return params

    def make_executor(self, folder: Path, job_name: str, *, offline: bool = False):
        """The submitit executor of this sweep's jobs (``offline``: one that only writes job scripts)."""
        submitit = require_submitit()
        timeouts = int(self.extra.get("max_num_timeout", MAX_TIMEOUTS))
        if self.executor == "submitit-local":
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=timeouts)
        elif offline:
            executor = _offline_slurm_executor()(folder=folder, max_num_timeout=timeouts)
        else:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=timeouts)
        try:
            executor.update_parameters(**self.parameters(job_name))
        except ValueError as exc:
            raise UsageError(f"--slurm: {exc}") from None
        return executor

    def job_script(self, group: Group) -> str:
        """The sbatch script submitit writes for one cell (made here, no cluster needed)."""
        if self.executor != "slurm":
            return "(submitit-local: each job is `python -m submitit.local._local FOLDER` on this machine, no script)"
        executor = self.make_executor(job_folder(group), f"idmm-{group.name}", offline=True)
        return executor._make_submission_file_text(executor._submitit_command_str, "cell")

    def to_json(self, folder: Path) -> dict[str, Any]:
        return {
            "kind": self.executor,
            "folder": str(folder),
            "parameters": {k: v for k, v in self.parameters("idmm").items() if k != "job_name"},
        }


def _offline_slurm_executor():
    """A SlurmExecutor that does not look for ``srun`` (it only renders job scripts)."""
    from submitit import SlurmExecutor

    class OfflineSlurmExecutor(SlurmExecutor):
        @classmethod
        def affinity(cls) -> int:
            return 1

    return OfflineSlurmExecutor


def job_folder(group: Group) -> Path:
    """submitit's folder for the sweep's jobs (one sub-folder per job id: pickles, logs, sbatch script)."""
    return group.manifest.with_suffix(".submitit").absolute() / "%j"


# ---------------------------------------------------------------------------------------------
# a cell's run directory, seen from its job


def release_stale_run(run_path: Path, job_ids: set[str]) -> bool:
    """Mark the run interrupted when its summary still says "running" for one of ``job_ids`` (an
    earlier attempt of this job, killed by a requeue or a node failure: SLURM runs a job id once at a
    time) and no live process of it is visible here. Returns whether it did."""
    run = RunDir(Path(run_path))
    summary = run.read_summary()
    if summary.get("status") != "running":
        return False
    launch = summary.get("launch") if isinstance(summary.get("launch"), dict) else {}
    job = launch.get("job") if isinstance(launch.get("job"), dict) else {}
    if str(job.get("job_id", "")) not in job_ids:
        return False
    if summary.get("host") == socket.gethostname() and run_process_alive(summary):
        return False
    summary.update(status="interrupted", pid=None, pid_start=None, updated_at=now_iso())
    run.write_summary(summary)
    return True


def cell_start_args(group: Group, cell: Cell) -> list[str]:
    """``idmm run`` arguments that start the cell's run (as a local sweep's cell_command)."""
    sets = [arg for o in cell.overrides for arg in ("--set", o)]
    return [
        "run",
        group.spec["recipe"],
        *sets,
        "--runs-dir",
        str(group.runs_dir.absolute()),
        "--name",
        cell.name,
        "--group",
        group.name,
    ]


# ---------------------------------------------------------------------------------------------
# submitting and following


def _job_record(job, executor: str, folder: Path) -> dict[str, Any]:
    record = {
        "executor": executor,
        "job_id": str(job.job_id),
        "folder": str(folder),
        "stdout": str(job.paths.stdout),
        "stderr": str(job.paths.stderr),
        "state": "SUBMITTED",
        "submitted_at": now_iso(),
    }
    if executor == "submitit-local":  # its job id is the pid of the local controller process
        record["host"] = socket.gethostname()
        record["pid_start"] = process_start(int(job.job_id)) if str(job.job_id).isdigit() else None
    return record


def _state_word(state: Any) -> str:
    return str(state or "UNKNOWN").split()[0].upper()


def is_terminal(record: dict[str, Any]) -> bool:
    return _state_word(record.get("state")) in TERMINAL


def run_cluster_sweep(group: Group, plans: list, options: ClusterOptions, *, wait: bool, say):
    """Submit the cells that need running; with ``wait`` (always for submitit-local) follow the jobs
    until every one ended and return the cells' results (SweepResults), else None after submitting."""
    from idmm_tui.experiments.sweep import CellResult, _init_source

    require_submitit()
    wait = wait or options.executor == "submitit-local"
    folder = job_folder(group)
    group.executor = options.to_json(folder)
    group.save()
    executor = options.make_executor(folder, f"idmm-{group.name}")
    refresh_states(group)  # jobs of an earlier invocation still queued or running are not submitted again
    results: dict[str, CellResult] = {}
    jobs: dict[str, Any] = {}  # cell name -> submitit Job
    held: list = []  # submitit-local: cells waiting for their source run
    source_jobs: dict[str, str] = {}  # source run path -> job id (SLURM dependencies)
    to_submit = []
    for cp in plans:
        record = group.jobs.get(cp.cell.name, {})
        if cp.action == "skip":
            results[cp.cell.name] = CellResult(cp.cell, "skipped", cp.detail)
        elif record and not is_terminal(record):
            results[cp.cell.name] = CellResult(cp.cell, "busy", f"job {record.get('job_id')} {record.get('state')}")
            say(f"{cp.cell.name}: already job {record.get('job_id')} ({record.get('state')}); not submitted again")
        elif cp.action == "busy" and not record:
            results[cp.cell.name] = CellResult(cp.cell, "busy", cp.detail)
        else:
            to_submit.append(cp)

    def submit(batch: list, dependency: str | None = None) -> None:
        if not batch:
            return
        from idmm_tui.experiments.slurm_job import CellJob

        callables = []
        for cp in batch:
            old = group.jobs.get(cp.cell.name, {}).get("job_id")
            callables.append(
                CellJob(
                    cp.cell.name,
                    str(group.run_path(cp.cell).absolute()),
                    cell_start_args(group, cp.cell),
                    group=group.name,
                    resume=cp.action != "start",
                    takeover={str(old)} if old else set(),
                    stop_timeout_s=max(10, options.signal_delay_s - 30),
                )
            )
        if dependency:
            executor.update_parameters(
                additional_parameters={
                    **options.parameters().get("additional_parameters", {}),
                    "dependency": dependency,
                    "kill-on-invalid-dep": "yes",
                }
            )
        try:
            submitted = executor.submit_array(callables) if len(callables) > 1 else [executor.submit(callables[0])]
        except Exception as exc:  # sbatch refused (partition, account, limits…): say what it said
            raise UsageError(f"submitting {len(callables)} job(s) failed: {exc}") from None
        finally:
            if dependency:
                executor.update_parameters(additional_parameters=options.parameters().get("additional_parameters", {}))
        for cp, job in zip(batch, submitted, strict=True):
            jobs[cp.cell.name] = job
            group.jobs[cp.cell.name] = _job_record(job, options.executor, folder)
            if cp.cell.role == "source":
                source_jobs[str(group.run_path(cp.cell).absolute())] = str(job.job_id)
            say(f"{cp.cell.name}: job {job.job_id} ({cp.action}) log {job.paths.stdout}")
        group.save()

    # cells without a pending source first (one array), then the targets of each submitted source
    ready = [cp for cp in to_submit if _source_ready(cp)]
    submit(ready)
    by_source: dict[str, list] = {}
    for cp in to_submit:
        if cp in ready:
            continue
        source = str(Path(_init_source(cp.cell)).absolute())
        if source in source_jobs and options.executor == "slurm":
            by_source.setdefault(source, []).append(cp)
        else:
            held.append(cp)
    for source, batch in by_source.items():
        submit(batch, dependency=f"afterok:{source_jobs[source]}")
    if not wait:
        for cp in held:
            results[cp.cell.name] = CellResult(cp.cell, "blocked", "its source run did not complete")
        return None
    return _follow(group, plans, options, jobs, held, results, submit, say)


def _source_ready(cp) -> bool:
    from idmm_tui.experiments.sweep import _init_source

    source = _init_source(cp.cell)
    if not source:
        return True
    return read_json(Path(source) / "summary.json").get("status") == "completed"


def _follow(group: Group, plans: list, options: ClusterOptions, jobs: dict, held: list, results: dict, submit, say):
    """Wait for the jobs (refreshing their states in the manifest), submit held cells once their
    source completed; a Ctrl-C stops following (SLURM: the jobs go on; submitit-local: they are
    cancelled and stop with a checkpoint)."""
    from idmm_tui.experiments.sweep import CellResult, SweepResults, _init_source

    signals: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: signals.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}
    interval = 1.0 if options.executor == "submitit-local" else 30.0
    try:
        while True:
            changed = False
            for name, job in jobs.items():
                record = group.jobs[name]
                state = _state_word(job.state)
                if state != record.get("state"):
                    record.update(state=state, updated_at=now_iso())
                    changed = True
            if changed:
                group.save()
            for cp in list(held):
                source = Path(_init_source(cp.cell))
                status = read_json(source / "summary.json").get("status")
                if status == "completed":
                    held.remove(cp)
                    submit([cp])
                elif source.name not in jobs or jobs[source.name].done():
                    held.remove(cp)
                    why = f"its source run {source.name} did not complete"
                    results[cp.cell.name] = CellResult(cp.cell, "blocked", why)
            if signals:
                if options.executor == "submitit-local":
                    for job in jobs.values():
                        if not job.done():
                            job.cancel(check=False)
                    held.clear()
                else:
                    say("stopped following; the jobs go on (idmm sweep --group … --status / --cancel)")
                    break
            if not held and all(job.done() for job in jobs.values()):
                break
            time.sleep(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for name, job in jobs.items():
        record = group.jobs[name]
        record.update(state=_state_word(job.state), updated_at=now_iso())
    group.save()
    for cp in plans:
        name = cp.cell.name
        if name in results or name not in jobs:
            continue
        summary = read_json(group.run_path(cp.cell) / "summary.json")
        status = effective_status(summary) if summary else "not started"
        record = group.jobs.get(name, {})
        if status == "completed":
            results[name] = CellResult(cp.cell, "completed", f"test_acc {summary.get('test_acc')}")
        elif not is_terminal(record):  # SLURM, no longer followed: the job goes on
            results[name] = CellResult(cp.cell, "busy", f"job {record.get('job_id')} {record.get('state')}")
        elif status in ("interrupted", "running") and signals:
            results[name] = CellResult(cp.cell, "interrupted", "checkpoint kept")
        else:
            why = summary.get("error") if isinstance(summary.get("error"), str) else ""
            why = why or f"job {record.get('job_id')} {record.get('state')}: see {record.get('stderr')}"
            results[name] = CellResult(cp.cell, "failed", why)
    out = SweepResults(results[cp.cell.name] for cp in plans if cp.cell.name in results)
    out.interrupted = bool(signals)
    return out


# ---------------------------------------------------------------------------------------------
# status and cancel (any later invocation: by job id, through submitit)


def _local_alive(record: dict[str, Any]) -> bool:
    job_id = str(record.get("job_id", ""))
    if not job_id.isdigit() or record.get("host") not in (None, socket.gethostname()):
        return False
    return run_process_alive({"pid": int(job_id), "pid_start": record.get("pid_start")})


def refresh_states(group: Group) -> bool:
    """Ask the scheduler (sacct through submitit) for the state of every job that has not ended."""
    changed = False
    live = {name: r for name, r in group.jobs.items() if not is_terminal(r)}
    if not live:
        return False
    slurm = {name: r for name, r in live.items() if r.get("executor") == "slurm"}
    handles = {}
    if slurm:
        submitit = require_submitit()
        handles = {n: submitit.SlurmJob(folder=r.get("folder"), job_id=str(r.get("job_id"))) for n, r in slurm.items()}
    for name, record in live.items():
        try:
            if name in handles:
                state = _state_word(handles[name].state)
            else:
                state = "RUNNING" if _local_alive(record) else "ENDED"
        except Exception:  # sacct missing or failing: keep what the manifest says
            continue
        if state != _state_word(record.get("state")) and state != "UNKNOWN":
            record.update(state=state, updated_at=now_iso())
            changed = True
    if changed:
        group.save()
    return changed


def status_rows(group: Group) -> list[dict[str, Any]]:
    """Every cell: its run's status, and its job (id, state, log files) when it has one."""
    if group.jobs:
        refresh_states(group)
    rows = []
    for cell in group.cells:
        summary = read_json(group.run_path(cell) / "summary.json")
        record = group.jobs.get(cell.name, {})
        rows.append(
            {
                "cell": cell.name,
                "run": effective_status(summary) if summary else "not started",
                "job_id": record.get("job_id"),
                "job_state": record.get("state"),
                "stdout": record.get("stdout"),
                "stderr": record.get("stderr"),
            }
        )
    return rows


def cancel_jobs(group: Group, *, say) -> int:
    """Cancel every job of the group that has not ended (scancel through submitit; submitit-local:
    SIGINT to its controller). Running cells stop with a checkpoint. Returns how many."""
    refresh_states(group)
    count = 0
    for name, record in group.jobs.items():
        if is_terminal(record):
            continue
        if record.get("executor") == "slurm":
            submitit = require_submitit()
            submitit.SlurmJob(folder=record.get("folder"), job_id=str(record.get("job_id"))).cancel(check=False)
        elif _local_alive(record):
            os.kill(int(record["job_id"]), signal.SIGINT)
        else:
            continue
        record.update(state="CANCELLED", updated_at=now_iso())
        say(f"{name}: job {record.get('job_id')} cancelled")
        count += 1
    group.save()
    if not count:
        say("no queued or running job to cancel")
    return count
