"""How a run was launched, and how to launch its resume the same way (no torch here).

``idmm run`` records in ``summary.json`` (rank 0, when training starts or resumes)::

    "world_size": 4, "nodes": 2, "hosts": ["gpu-a", "gpu-b"],
    "launch": {"launcher": "torchrun", "argv": [...torchrun's own options...], "program": ["-m", "idmm_tui"],
               "nproc_per_node": 2, "ranks": [{"rank": 0, "host": "gpu-a", "pid": 123, "pid_start": "…"}, …],
               "job": {"executor": "slurm", "job_id": "4242_3"}}

``launcher`` is ``python`` (one process), ``torchrun`` (``argv`` = the torchrun command line before the
program, read from the parent process), ``submitit`` (a job of ``idmm sweep --executor …``, ranks placed
by srun / submitit) or ``env`` (another launcher that set ``WORLD_SIZE`` / ``RANK``). An exact resume
needs every rank's RNG state, so a run resumes with the world size it was checkpointed with:
:func:`resume_command` gives the command that does that, or says why it cannot be run from here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

#: The environment torchrun (torch.distributed.elastic) gives its workers.
TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def parent_argv(pid: int | None = None) -> list[str]:
    """The command line of the parent process (``[]`` where /proc cannot tell)."""
    ppid = os.getppid() if pid is None else pid
    try:
        raw = Path(f"/proc/{ppid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def split_launcher(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """``(launcher words, program words)`` of a launcher command line that runs idmm:
    ``[…torchrun, --nproc_per_node, 2], [-m, idmm_tui]`` for ``torchrun --nproc_per_node 2 -m idmm_tui run …``
    (also ``python -m torch.distributed.run …`` and ``torchrun … --no-python idmm run …``); None otherwise."""
    for i, word in enumerate(argv[:-1]):
        if word in ("-m", "--module") and argv[i + 1] in ("idmm_tui", "idmm_tui.__main__"):
            return argv[:i], argv[i : i + 2]
    for i, word in enumerate(argv):
        if i and (Path(word).name == "idmm" or word.endswith("idmm_tui/__main__.py")):
            return argv[:i], [word]
    return None


def detect_launch(world_size: int) -> dict[str, Any]:
    """What this process can tell about how it was started (the same on every rank of a node)."""
    env = os.environ
    if env.get("SUBMITIT_EXECUTOR"):
        executor = env["SUBMITIT_EXECUTOR"]
        job_id = env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID", "")
        if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
            job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
        job = {"executor": executor, "job_id": job_id}
        if env.get("IDMM_SWEEP_GROUP"):
            job["group"] = env["IDMM_SWEEP_GROUP"]
        nodes = _int_env("SLURM_JOB_NUM_NODES", _int_env("SUBMITIT_LOCAL_JOB_NUM_NODES", 1))
        return {"launcher": "submitit", "nodes": nodes, "job": job}
    if env.get(TORCHRUN_ENV) is not None:
        record: dict[str, Any] = {
            "launcher": "torchrun",
            "nodes": _int_env("GROUP_WORLD_SIZE", 1),
            "nproc_per_node": _int_env("LOCAL_WORLD_SIZE", world_size),
        }
        split = split_launcher(parent_argv())
        if split is not None:
            record["argv"], record["program"] = split
        return record
    if world_size > 1:
        return {"launcher": "env", "nodes": 0}  # 0: unknown, counted from the ranks' hosts
    return {"launcher": "python", "nodes": 1}


def summary_fields(launch: dict[str, Any], ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary.json keys of a launch (``ranks``: every rank's rank, host, pid, pid_start, in rank order)."""
    hosts = list(dict.fromkeys(str(r.get("host")) for r in ranks))
    launch = dict(launch)
    nodes = launch.pop("nodes", 0) or len(hosts)
    return {"world_size": len(ranks), "nodes": nodes, "hosts": hosts, "launch": {**launch, "ranks": ranks}}


def launch_of(summary: dict[str, Any]) -> dict[str, Any]:
    launch = summary.get("launch")
    return launch if isinstance(launch, dict) else {}


def _words(value: Any) -> list[str] | None:
    return value if isinstance(value, list) and value and all(isinstance(w, str) for w in value) else None


def describe(summary: dict[str, Any]) -> str:
    """One line: ``2 processes on 2 nodes (gpu-a, gpu-b), torchrun`` (empty for one process)."""
    world = summary.get("world_size")
    if not isinstance(world, int) or isinstance(world, bool) or world <= 1:
        return ""
    launch = launch_of(summary)
    nodes = summary.get("nodes")
    listed = summary.get("hosts")
    hosts = [h for h in listed if isinstance(h, str)] if isinstance(listed, list) else []
    text = f"{world} processes"
    if isinstance(nodes, int) and nodes > 1:
        text += f" on {nodes} nodes"
    if hosts:
        text += f" ({', '.join(hosts[:4])}{', …' if len(hosts) > 4 else ''})"
    kind = launch.get("launcher")
    job = launch.get("job") if isinstance(launch.get("job"), dict) else {}
    if kind == "submitit" and job.get("job_id"):
        text += f", {job.get('executor', 'submitit')} job {job['job_id']}"
    elif isinstance(kind, str) and kind:
        text += f", {kind}"
    return text


def resume_command(summary: dict[str, Any], run_path: Path) -> tuple[list[str] | None, str]:
    """``(command, "")`` that resumes the run as it was launched (same launcher, same world size), or
    ``(None, why not and what to run instead)``.

    One process: ``python -m idmm_tui run --resume RUN``. torchrun on one node: the recorded torchrun
    command line with ``run --resume RUN``. Several nodes, a submitit job, or a launcher idmm did not
    record: None, with the command to run (on every node) or the sweep to re-run.
    """
    from idmm_tui.runs.spawn import idmm_command

    path = str(run_path)
    tail = ["run", "--resume", path]
    world = summary.get("world_size")
    world = world if isinstance(world, int) and not isinstance(world, bool) and world > 0 else 1
    launch = launch_of(summary)
    kind = launch.get("launcher")
    if world == 1 and kind != "submitit":
        return [*idmm_command(), *tail], ""
    job = launch.get("job") if isinstance(launch.get("job"), dict) else {}
    if kind == "submitit":
        group = job.get("group") or summary.get("group")
        how = f"idmm sweep --group {group} --runs-dir {run_path.parent}" if group else "idmm sweep --group GROUP"
        return None, (
            f"it ran as {job.get('executor', 'submitit')} job {job.get('job_id', '?')} with {world} process(es); "
            f"resubmit it with: {how}"
        )
    argv, program = _words(launch.get("argv")), _words(launch.get("program"))
    nodes = summary.get("nodes")
    nodes = nodes if isinstance(nodes, int) and not isinstance(nodes, bool) else 1
    if kind == "torchrun" and argv and program:
        command = [*argv, *program, *tail]
        if nodes > 1:
            return None, (
                f"it ran on {nodes} nodes; resume it on each of them (same --rdzv-endpoint, --node-rank 0…{nodes - 1}) "
                f"with: {shlex.join(command)}"
            )
        if shutil.which(argv[0]) is None:
            return None, f"its launcher {argv[0]} is not here; resume it with: {shlex.join(command)}"
        return command, ""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    guess = [torchrun, "--standalone", "--nproc_per_node", str(world), "-m", "idmm_tui", *tail]
    return None, (
        f"it was checkpointed by {world} processes and how they were launched is not recorded; resume it with "
        f"the same number, e.g.: {shlex.join(guess)}"
    )


def this_host() -> str:
    return socket.gethostname()
