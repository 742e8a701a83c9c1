"""The pieces of running beyond one process: cell slots, launch records and resume commands, SLURM
options, stale runs of requeued jobs, job records for the dashboard."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

from idmm_tui.errors import UsageError
from idmm_tui.experiments.sweep import cell_slots, check_parallel_launcher, default_launcher
from idmm_tui.runs.launcher import describe, resume_command, split_launcher, summary_fields
from idmm_tui.runs.store import summary_problem
from idmm_tui.tui.jobs import JobIndex, job_text


def test_cell_slots_give_each_cell_its_gpus_or_its_share_of_threads(monkeypatch):
    slots = cell_slots(2, 2, gpus=["0", "1", "2", "3", "4"])
    assert slots.devices == (("0", "1"), ("2", "3"))
    assert slots.env(1)["CUDA_VISIBLE_DEVICES"] == "2,3"
    with pytest.raises(UsageError, match="needs 6 GPUs; 5 visible"):
        cell_slots(3, 2, gpus=["0", "1", "2", "3", "4"])
    with pytest.raises(UsageError, match="none visible"):
        cell_slots(1, 1, gpus=[])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert cell_slots(2).threads == max(1, cores // 2) and cell_slots(2).devices is None
    assert cell_slots(1).threads is None and cell_slots(1).env(0) == {}  # one cell: the environment as it is
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cell_slots(4).threads is None  # the user's own setting wins
    with pytest.raises(UsageError):
        cell_slots(0)
    assert default_launcher(1) is None and default_launcher(4)[1:] == ["--standalone", "--nproc_per_node", "4"]
    check_parallel_launcher(default_launcher(4), 2)
    with pytest.raises(UsageError, match="port 29500"):
        check_parallel_launcher(["/v/bin/torchrun", "--nproc_per_node", "4"], 2)
    check_parallel_launcher(["/v/bin/torchrun", "--nproc_per_node", "4"], 1)


def test_split_launcher_finds_the_launcher_words_before_idmm():
    torchrun = ["/v/bin/python3", "/v/bin/torchrun", "--standalone", "--nproc_per_node", "2"]
    assert split_launcher([*torchrun, "-m", "idmm_tui", "run", "r.toml"]) == (torchrun, ["-m", "idmm_tui"])
    module = ["python", "-m", "torch.distributed.run", "--nnodes", "2"]
    assert split_launcher([*module, "--module", "idmm_tui", "run"]) == (module, ["--module", "idmm_tui"])
    no_python = ["torchrun", "--no-python", "--nproc_per_node", "2"]
    assert split_launcher([*no_python, "/v/bin/idmm", "run"]) == (no_python, ["/v/bin/idmm"])
    assert split_launcher(["python", "train.py"]) is None


def _summary(world: int, nodes: int, launch: dict) -> dict:
    ranks = [{"rank": r, "host": f"h{r // (world // nodes)}", "pid": 100 + r} for r in range(world)]
    return {"group": "g", **summary_fields({**launch, "nodes": nodes}, ranks)}


def test_resume_command_relaunches_as_recorded_or_says_why_not(tmp_path):
    run = tmp_path / "r"
    one = _summary(1, 1, {"launcher": "python"})
    assert one["hosts"] == ["h0"] and one["world_size"] == 1
    assert resume_command(one, run) == ([sys.executable, "-m", "idmm_tui", "run", "--resume", str(run)], "")
    argv = [sys.executable, "--standalone", "--nproc_per_node", "2"]  # an executable that exists here
    ddp = _summary(2, 1, {"launcher": "torchrun", "argv": argv, "program": ["-m", "idmm_tui"]})
    assert resume_command(ddp, run) == ([*argv, "-m", "idmm_tui", "run", "--resume", str(run)], "")
    assert describe(ddp) == "2 processes (h0), torchrun"
    nodes = _summary(
        4, 2, {"launcher": "torchrun", "argv": ["torchrun", "--nnodes", "2"], "program": ["-m", "idmm_tui"]}
    )
    command, why = resume_command(nodes, run)
    assert command is None and "on 2 nodes" in why and "--node-rank 0…1" in why and "run --resume" in why
    assert describe(nodes) == "4 processes on 2 nodes (h0, h1), torchrun"
    job = _summary(8, 2, {"launcher": "submitit", "job": {"executor": "slurm", "job_id": "42_1", "group": "g"}})
    command, why = resume_command(job, run)
    assert command is None and "slurm job 42_1" in why and "idmm sweep --group g" in why
    legacy = {"world_size": 2}  # recorded before launches were: the command to type, with the same number
    command, why = resume_command(legacy, run)
    assert command is None and "--nproc_per_node 2" in why


def test_summary_launch_fields_are_type_checked():
    assert summary_problem({"world_size": 2, "nodes": 2, "hosts": ["a", "b"], "launch": {}}) is None
    assert "nodes" in summary_problem({"nodes": "two"})
    assert "hosts" in summary_problem({"hosts": "a,b"})
    assert "launch" in summary_problem({"launch": ["torchrun"]})


def test_slurm_time_and_items():
    from idmm_tui.experiments.cluster import parse_items, parse_time

    assert [parse_time(t) for t in ("90", "24:00:00", "1-00:00:00", "2-12", "30:30", "0:59:01")] == [
        90,
        1440,
        1440,
        3600,
        31,
        60,
    ]
    for bad in ("soon", "1:2:3:4", "0"):
        with pytest.raises(UsageError):
            parse_time(bad)
    items = parse_items(["mem=64G", "cpus-per-task=8", "setup=module load a", "setup=module load b", "exclusive=true"])
    assert items == {"mem": "64G", "cpus_per_task": 8, "setup": ["module load a", "module load b"], "exclusive": True}
    with pytest.raises(UsageError):
        parse_items(["mem"])


def test_a_requeued_jobs_stale_run_is_released_only_for_its_own_job(tmp_path):
    from idmm_tui.experiments.cluster import release_stale_run

    run = tmp_path / "cell"
    run.mkdir()
    summary = {
        "status": "running",
        "pid": 999999,
        "host": "another-node",
        "launch": {"launcher": "submitit", "job": {"executor": "slurm", "job_id": "42_3"}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    assert not release_stale_run(run, {"43_0"})  # another job: not ours to touch
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    assert release_stale_run(run, {"42_3"})  # the same job id, requeued: its earlier attempt is gone
    released = json.loads((run / "summary.json").read_text())
    assert released["status"] == "interrupted" and released["pid"] is None
    here = {**summary, "host": socket.gethostname(), "pid": os.getpid(), "pid_start": None}
    (run / "summary.json").write_text(json.dumps(here))
    assert not release_stale_run(run, {"42_3"})  # a live process of it here: left alone


def test_job_index_reads_manifests_again_only_when_they_change(tmp_path):
    index = JobIndex(tmp_path)
    assert not index.refresh() and index.jobs == {}
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    manifest = {"format": "idmm-sweep/1", "jobs": {"g.a": {"job_id": "7", "state": "PENDING", "odd": [1]}}}
    (sweeps / "g.json").write_text(json.dumps(manifest))
    (sweeps / "broken.json").write_text("{not json")
    assert index.refresh() and index.job("g.a") == {"job_id": "7", "state": "PENDING"}
    assert not index.refresh()  # unchanged files are not parsed again
    manifest["jobs"]["g.a"]["state"] = "RUNNING"
    (sweeps / "g.json").write_text(json.dumps(manifest) + " ")
    assert index.refresh() and job_text(index.job("g.a")) == "7 RUNNING"
    (sweeps / "g.json").unlink()
    assert index.refresh() and index.job("g.a") is None


def test_the_launch_record_of_one_process(monkeypatch):
    import torch

    from idmm_tui.engine.distributed import Placement, launch_record

    for key in ("TORCHELASTIC_RUN_ID", "SUBMITIT_EXECUTOR", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    record = launch_record(Placement(torch.device("cpu")))
    assert record["world_size"] == 1 and record["nodes"] == 1 and record["hosts"] == [socket.gethostname()]
    assert record["launch"]["launcher"] == "python" and record["launch"]["ranks"][0]["pid"] == os.getpid()
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "98")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    job = launch_record(Placement(torch.device("cpu")))
    assert job["launch"]["job"] == {"executor": "slurm", "job_id": "98_3"} and job["nodes"] == 2
