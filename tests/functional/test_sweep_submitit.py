"""`idmm sweep --executor …` through submitit: the SLURM job path run by submitit's own local executor
(real job processes, pickled callable, preemption signal, requeue), and the sbatch script of a cell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import idmm_subprocess_cmd

pytest.importorskip("submitit")

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def test_a_preempted_cell_is_requeued_and_resumes_exactly(tiny_recipe, tmp_path, cli):
    from tests.functional.test_cli_run import final_metrics

    runs = tmp_path / "runs"
    args = ["sweep", str(tiny_recipe), "--axis", "name=a,b", "--set", "pretrain.epochs=20", "--runs-dir", str(runs)]
    proc = subprocess.Popen(
        [*idmm_subprocess_cmd(), *args, "--executor", "submitit-local", "--time", "60", "--json"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cell = runs / "tiny.name-a"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (
        (cell / "metrics.jsonl").exists() and (cell / "metrics.jsonl").read_text().count("\n") >= 3
    ):
        time.sleep(0.05)
    # Preemption as SLURM does it: USR2 to the job's task (the process running the submitit callable,
    # whose child is `idmm run`). (LocalJob._interrupt() signals the local controller instead, which
    # does not handle USR2.)
    # 20 epochs (60 steps): cell a is still pretraining when the signal comes, even under load
    task = _parent(json.loads((cell / "summary.json").read_text())["pid"])
    assert b"submitit.core._submit" in Path(f"/proc/{task}/cmdline").read_bytes()
    os.kill(task, signal.SIGUSR2)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert [r["outcome"] for r in json.loads(out)] == ["completed", "completed"]

    manifest = json.loads((runs / "sweeps" / "tiny.json").read_text())
    assert manifest["executor"]["kind"] == "submitit-local"
    jobs = manifest["jobs"]
    assert set(jobs) == {"tiny.name-a", "tiny.name-b"} and {j["state"] for j in jobs.values()} == {"FINISHED"}
    log = Path(jobs["tiny.name-a"]["stdout"]).read_text()
    assert "checkpointed; requeued" in log and "attempt 2" in log and "run --resume" in log
    assert "resumed at" in (cell / "run.log").read_text()
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["launch"]["launcher"] == "submitit"
    assert summary["launch"]["job"]["job_id"] == jobs["tiny.name-a"]["job_id"]
    # the requeued cell ends exactly as the uninterrupted one (same training: only `name` differs)
    assert final_metrics(cell) == final_metrics(runs / "tiny.name-b")

    status = cli("sweep", "--group", "tiny", "--status", "--json", "--runs-dir", runs)
    assert status.code == 0, status.err
    rows = {r["cell"]: r for r in status.json()}
    assert rows["tiny.name-a"]["run"] == "completed" and rows["tiny.name-a"]["job_id"] == jobs["tiny.name-a"]["job_id"]
    assert rows["tiny.name-b"]["stdout"] == jobs["tiny.name-b"]["stdout"]


def test_the_sbatch_script_of_a_cell_without_a_cluster(tiny_recipe, tmp_path, cli):
    runs = tmp_path / "runs"
    result = cli(
        "sweep",
        tiny_recipe,
        "--axis",
        "pretrain.method=idmm,none",
        "--runs-dir",
        runs,
        "--executor",
        "slurm",
        "--partition",
        "gpu",
        "--gpus-per-node",
        "4",
        "--nodes",
        "2",
        "--time",
        "1-00:00:00",
        "--account",
        "lab",
        "--slurm",
        "mem=64G",
        "--slurm",
        "setup=module load cuda",
        "--dry-run",
    )
    assert result.code == 0, result.err
    script = result.out
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",  # one task per GPU: DDP over 8 processes
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=1440",
        "#SBATCH --account=lab",
        "#SBATCH --mem=64G",
        "#SBATCH --signal=USR2@120",  # submitit's checkpoint signal, 2 minutes before the limit
        "module load cuda",
    ):
        assert line in script.splitlines(), line
    assert "srun --unbuffered" in script and "-m submitit.core._submit" in script
    assert not runs.exists()  # a dry run submits and writes nothing
    bad = cli("sweep", tiny_recipe, "--axis", "pretrain.method=none", "--executor", "slurm", "--time", "soon")
    assert bad.code == 2 and "--time 'soon'" in bad.err

    # a sweep whose cells are SLURM jobs is not re-run on this machine by mistake
    from idmm_tui.experiments.sweep import Axis, SweepSpec, prepare

    group, _ = prepare(SweepSpec(str(tiny_recipe), [Axis("pretrain.method", ("idmm", "none"))]), "g", runs)
    group.executor = {"kind": "slurm", "parameters": {"partition": "gpu", "gpus_per_node": 4}}
    group.save()
    again = cli("sweep", "--group", "g", "--runs-dir", runs)
    assert again.code == 2 and "runs its cells as slurm jobs (gpus_per_node 4, partition gpu)" in again.err
    assert sorted(p.name for p in runs.iterdir()) == ["sweeps"]  # no cell ran here
