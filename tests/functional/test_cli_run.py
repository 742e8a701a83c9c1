"""`idmm run` end to end on tiny real-format data: outputs, resume, Ctrl-C, bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from idmm_tui.fsutil import sha256_file
from idmm_tui.runs.store import RunDir
from tests.conftest import idmm_subprocess_cmd

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_cli_run")

REPO = Path(__file__).resolve().parents[2]


def final_metrics(run: Path) -> dict:
    """What must not change between an uninterrupted and a resumed run."""
    summary = json.loads((run / "summary.json").read_text())
    epochs = [m for m in RunDir(run).read_metrics() if m["kind"] == "epoch"]
    weights = {
        p.name: sha256_file(p)
        for p in sorted((run / "checkpoints").glob("*.safetensors"))
        if not p.name.startswith("last.")
    }
    return {
        "test_acc": summary["test_acc"],
        "stages": {k: {m: v.get(m) for m in ("loss", "test_acc", "step")} for k, v in summary["stages"].items()},
        "epoch_losses": [(m["stage"], m["epoch"], m["loss"], m.get("test_acc")) for m in epochs],
        "weights": weights,
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, tiny_images):
    """One uninterrupted tiny run, shared by the tests that compare against it."""
    from tests.conftest import TINY_RECIPE

    tmp = tmp_path_factory.mktemp("baseline")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    proc = subprocess.run(
        [*idmm_subprocess_cmd(), "run", str(recipe), "--runs-dir", str(tmp / "runs"), "--name", "base", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return recipe, tmp / "runs" / "base", json.loads(proc.stdout)


def test_run_writes_a_complete_run_directory(baseline):
    recipe, run, printed = baseline
    assert printed.pop("run_dir") == str(run.absolute())  # --json names the run directory it made
    assert printed == json.loads((run / "summary.json").read_text())
    assert printed["status"] == "completed"
    assert isinstance(printed["test_acc"], float) and 0.0 <= printed["test_acc"] <= 100.0
    assert set(printed["stages"]) == {"pretrain", "finetune_24"}
    assert (run / "recipe.toml").is_file() and (run / "run.log").is_file()
    lines = RunDir(run).read_metrics()
    for m in lines:
        assert {"stage", "epoch", "step", "loss", "lr", "images_per_s"} <= set(m)
    evals = [m for m in lines if "test_acc" in m]
    assert [m["epoch"] for m in evals] == [1, 2] and all(m["stage"] == "finetune_24" for m in evals)
    for stage in ("pretrain", "finetune_24"):
        assert (run / "checkpoints" / f"{stage}.safetensors").is_file()
        assert (run / "checkpoints" / f"{stage}.json").is_file()


def test_resolved_recipe_reproduces_the_run(baseline, tmp_path):
    """The saved recipe alone (no --set, no base) gives the same final metrics."""
    _, run, _ = baseline
    proc = subprocess.run(
        [
            *idmm_subprocess_cmd(),
            "run",
            str(run / "recipe.toml"),
            "--runs-dir",
            str(tmp_path),
            "--name",
            "again",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert final_metrics(tmp_path / "again") == final_metrics(run)


def test_ctrl_c_then_resume_matches_uninterrupted_run(baseline, tmp_path):
    recipe, base_run, _ = baseline
    runs = tmp_path / "runs"
    cmd = [*idmm_subprocess_cmd(), "run", str(recipe), "--runs-dir", str(runs), "--name", "cut"]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    metrics = runs / "cut" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or metrics.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "idmm run --resume" in err
    summary = json.loads((runs / "cut" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert (runs / "cut" / "checkpoints" / "last.json").is_file()
    resumed = subprocess.run(
        [*idmm_subprocess_cmd(), "run", "--resume", str(runs / "cut"), "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert final_metrics(runs / "cut") == final_metrics(base_run)


@pytest.mark.parametrize("stop_at", [3, 6, 9])  # mid-epoch in pretraining, end of pretraining, mid fine-tuning
def test_stop_at_any_step_then_resume_is_exact(baseline, tmp_path, stop_at, cli):
    """Stop through the core API at an exact step, resume from the CLI, compare with the baseline."""
    from idmm_tui.engine.distributed import Placement
    from idmm_tui.engine.events import NullReporter, RunInterrupted, StopRequest
    from idmm_tui.launch import create_run, execute

    recipe, base_run, _ = baseline
    run, resolved = create_run(recipe, [], tmp_path, "exact")
    stop = StopRequest()

    class StopAt(NullReporter):
        steps = 0

        def step(self, stage, epoch, step, loss, images_per_s):
            StopAt.steps += 1
            if StopAt.steps == stop_at:
                stop.request("test")

    with pytest.raises(RunInterrupted):
        execute(run, resolved, Placement(__import__("torch").device("cpu")), reporter=StopAt(), stop=stop)
    result = cli("run", "--resume", run.path, "--json")
    assert result.code == 0, result.err
    assert final_metrics(run.path) == final_metrics(base_run)


def test_runs_list_and_show(baseline, cli):
    _, run, _ = baseline
    listed = cli("runs", "list", "--runs-dir", run.parent, "--json")
    assert listed.code == 0
    assert [r["name"] for r in listed.json()] == ["base"]
    assert listed.json()[0]["status"] == "completed"
    shown = cli("runs", "show", "base", "--runs-dir", run.parent, "--json")
    assert shown.code == 0 and shown.json()["name"] == "base"
    table = cli("runs", "show", str(run))
    assert table.code == 0 and "finetune_24" in table.out


def test_resuming_a_completed_run_is_refused(baseline, cli):
    _, run, _ = baseline
    before = sha256_file(run / "summary.json")
    result = cli("run", "--resume", run)
    assert result.code == 2 and "already completed" in result.err
    assert sha256_file(run / "summary.json") == before


def test_embedded_demo_recipe_runs(tmp_path, cli):
    """The shipped demo recipe on the embedded dataset, shortened to one epoch per stage on half its
    classes (1,020 training images: half the time; `data.classes` is tested on its own)."""
    result = cli(
        "run",
        REPO / "recipes" / "demo.toml",
        "--runs-dir",
        tmp_path,
        "--name",
        "demo",
        "--json",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "pretrain.warmup_epochs=0",
        "--set",
        "finetune.0.epochs=1",
        "--set",
        "finetune.0.warmup_epochs=0",
        "--set",
        "pretrain.local_crops=1",
        "--set",
        "pretrain.knn_every=0",
        "--set",
        "data.num_workers=0",
        "--set",
        "data.classes=[0,1,2,3,4]",
    )
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["dataset"] == "embedded" and summary["status"] == "completed"
    assert summary["test_acc"] > 20.0  # better than chance on 5 classes after one epoch (31.9 measured)


def test_multi_process_ddp_with_gloo(tiny_recipe, tmp_path):
    """torchrun with 2 CPU processes: per-rank batches, rank 0 writes, one set of metrics."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "idmm_tui",
        "run",
        str(tiny_recipe),
        "--runs-dir",
        str(tmp_path),
        "--name",
        "ddp",
        "--json",
        "--set",
        "finetune.0.epochs=1",
        "--set",
        "finetune.0.warmup_epochs=0",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "pretrain.warmup_epochs=0",
        "--track",
        "tensorboard",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["world_size"] == 2
    epochs = [m for m in RunDir(tmp_path / "ddp").read_metrics() if m["kind"] == "epoch"]
    assert [(m["stage"], m["epoch"]) for m in epochs] == [("pretrain", 1), ("finetune_24", 1)]
    # 24 images, batch 8 in total = 4 per rank: 3 steps per epoch, not 6
    assert epochs[0]["step"] == 3
    # only rank 0 mirrors the run: one event file, holding what metrics.jsonl holds
    if importlib.util.find_spec("tensorboard") is not None:
        from tests.tracking_readers import expected_scalars, tensorboard_scalars

        logdir = tmp_path / "tracking" / "tensorboard" / "ddp"
        assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
        got, _ = tensorboard_scalars(logdir)
        assert expected_scalars(RunDir(tmp_path / "ddp").read_metrics()).keys() <= got.keys()


def test_sigkill_then_resume_matches_uninterrupted_run(baseline, tmp_path, cli):
    """A run killed without warning resumes from its last checkpoint and still ends identically."""
    recipe, base_run, _ = baseline
    runs = tmp_path / "runs"
    cmd = [*idmm_subprocess_cmd(), "run", str(recipe), "--runs-dir", str(runs), "--name", "killed"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    last = runs / "killed" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not last.exists():
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)
    listed = cli("runs", "list", "--runs-dir", runs, "--json").json()
    assert listed[0]["status"] in ("interrupted", "completed")  # "running" with a dead process reads as interrupted
    result = cli("run", "--resume", runs / "killed", "--json")
    if listed[0]["status"] == "completed":  # the kill came too late to matter
        assert result.code == 2
        return
    assert result.code == 0, result.err
    assert final_metrics(runs / "killed") == final_metrics(base_run)


def test_init_from_a_run_keeps_the_head_only_when_asked(baseline, tmp_path, cli):
    """init = <run dir>: backbone always loaded; the classifier head only with init_head = true."""
    from idmm_tui.engine.checkpoint import load_weights

    _, base_run, _ = baseline
    parent = load_weights(base_run / "checkpoints" / "finetune_24.safetensors")
    for keep in (True, False):
        name = f"child-{keep}"
        sets = [
            "pretrain.method=none",
            f"init={base_run}",
            f"init_head={str(keep).lower()}",
            "finetune.0.epochs=1",
            "finetune.0.warmup_epochs=0",
            "finetune.0.lr=1e-12",
        ]
        args = [a for item in sets for a in ("--set", item)]
        result = cli("run", base_run / "recipe.toml", "--runs-dir", tmp_path, "--name", name, "--json", *args)
        assert result.code == 0, result.err
        child = load_weights(tmp_path / name / "checkpoints" / "finetune_24.safetensors")
        assert (child["backbone.pos_embed"] - parent["backbone.pos_embed"]).abs().max() < 1e-6
        same_head = (child["head.weight"] - parent["head.weight"]).abs().max() < 1e-6
        assert bool(same_head) is keep
    bad = cli(
        "run",
        base_run / "recipe.toml",
        "--runs-dir",
        tmp_path,
        "--name",
        "bad",
        "--set",
        "pretrain.method=none",
        "--set",
        f"init={base_run / 'checkpoints' / 'pretrain.safetensors'}",
        "--set",
        "init_head=true",
    )
    assert bad.code == 2 and "init_head = true" in bad.err


def test_knn_monitor_logs_its_starting_point(tiny_recipe, tmp_path, cli):
    result = cli(
        "run",
        tiny_recipe,
        "--runs-dir",
        tmp_path / "runs",
        "--name",
        "knn",
        "--json",
        "--set",
        "pretrain.knn_every=1",
        "--set",
        "finetune.0.epochs=0",
    )
    assert result.code == 0, result.err
    summary = result.json()
    assert 0.0 <= summary["knn_start"]["pretrain"] <= 100.0
    knn = [
        m["knn_acc"]
        for m in RunDir(tmp_path / "runs" / "knn").read_metrics()
        if m["kind"] == "epoch" and "knn_acc" in m
    ]
    assert len(knn) == 2  # after each of the 2 pretraining epochs
    assert "kNN accuracy before training" in (tmp_path / "runs" / "knn" / "run.log").read_text()
