"""Bad input: a one-line message, a non-zero exit, and nothing created or harmed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idmm_tui.fsutil import sha256_file


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` with its sha256 (to prove nothing changed)."""
    return {str(p.relative_to(path)): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["pretrain.epoch=3"], "pretrain.epoch: unknown key (did you mean 'epochs'"),
        (["pretrain.epochs=-1"], "pretrain.epochs"),
        (["pretrain.epochs=many"], "pretrain.epochs"),
        (["finetune.0.resolution=23"], "does not work with backbone"),
        (["finetune.3.epochs=1"], "out of range"),
        (["model.backbone=deit_tiny"], "Did you mean 'deit_tiny_patch16_224'"),
        (["data.dataset=flower"], "Did you mean 'flowers102'"),
        (["pretrain.method=simclr2"], "unknown pretraining method"),
        (["pretrain.global_scale=[0.9, 0.1]"], "global_scale"),
        (["nonsense"], "--set expects KEY=VALUE"),
    ],
)
def test_bad_recipe_values_exit_2_and_create_nothing(cli, tiny_recipe, tmp_path, overrides, needle):
    runs = tmp_path / "runs"
    args = ["run", tiny_recipe, "--runs-dir", runs]
    for item in overrides:
        args += ["--set", item]
    result = cli(*args)
    assert result.code == 2, result.err
    assert needle in result.err
    assert str(tiny_recipe) in result.err or "--set" in result.err or "unknown" in result.err
    assert not runs.exists()


def test_unknown_key_in_the_file_names_file_and_key(cli, tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text('[pretrain]\nmethd = "idmm"\n')
    result = cli("run", recipe, "--runs-dir", tmp_path / "runs")
    assert result.code == 2
    assert str(recipe) in result.err and "pretrain.methd: unknown key (did you mean 'method'" in result.err
    assert not (tmp_path / "runs").exists()


def test_invalid_toml_and_missing_recipe(cli, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("seed = \n")
    assert cli("run", bad).code == 2
    missing = cli("run", tmp_path / "nope.toml")
    assert missing.code == 2 and "recipe not found" in missing.err


def test_missing_dataset_names_the_expected_path(cli, tiny_recipe, tmp_path):
    runs = tmp_path / "runs"
    result = cli(
        "run",
        tiny_recipe,
        "--runs-dir",
        runs,
        "--set",
        "data.dataset=flowers102",
        "--set",
        f"data.root={tmp_path / 'nothing'}",
    )
    assert result.code == 3
    assert str(tmp_path / "nothing" / "flowers-102") in result.err and "data.download = true" in result.err
    assert len(result.err.strip().splitlines()) <= 3  # one message, no traceback
    assert not runs.exists()


def test_existing_run_directory_is_refused_and_left_alone(cli, tiny_recipe, tmp_path):
    runs = tmp_path / "runs"
    (runs / "taken").mkdir(parents=True)
    (runs / "taken" / "precious.txt").write_text("keep me")
    before = tree(runs)
    result = cli("run", tiny_recipe, "--runs-dir", runs, "--name", "taken")
    assert result.code == 2 and "already exists" in result.err
    assert tree(runs) == before


def test_resume_refuses_foreign_and_missing_directories(cli, tmp_path):
    foreign = tmp_path / "notarun"
    foreign.mkdir()
    (foreign / "data.txt").write_text("x")
    result = cli("run", "--resume", foreign)
    assert result.code == 2 and "not an idmm run directory" in result.err
    assert (foreign / "data.txt").read_text() == "x" and len(list(foreign.iterdir())) == 1
    assert cli("run", "--resume", tmp_path / "missing").code == 2


def test_recipe_and_resume_are_exclusive(cli, tiny_recipe, tmp_path):
    assert cli("run").code == 2
    assert cli("run", tiny_recipe, "--resume", tmp_path).code == 2


def _interrupted_run(tiny_recipe: Path, runs: Path) -> Path:
    """A run stopped after its third step (a real checkpoint on disk)."""
    import torch

    from idmm_tui.engine.distributed import Placement
    from idmm_tui.engine.events import NullReporter, RunInterrupted, StopRequest
    from idmm_tui.launch import create_run, execute

    run, recipe = create_run(tiny_recipe, [], runs, "cut")
    stop = StopRequest()

    class StopAt(NullReporter):
        def step(self, stage, epoch, step, loss, images_per_s):
            if step == 3:
                stop.request("test")

    with pytest.raises(RunInterrupted):
        execute(run, recipe, Placement(torch.device("cpu")), reporter=StopAt(), stop=stop)
    return run.path


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete-json", "garbage-json"])
def test_corrupt_checkpoint_is_detected_not_loaded(cli, tiny_recipe, tmp_path, damage):
    run = _interrupted_run(tiny_recipe, tmp_path / "runs")
    state = run / "checkpoints" / "last.json"
    weights = run / "checkpoints" / json.loads(state.read_text())["weights"]
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        weights.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "delete-json":
        state.unlink()
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "interrupted"
    else:
        state.write_text("{not json")
    before = tree(run)
    result = cli("run", "--resume", run)
    if damage == "delete-json":
        # no checkpoint state at all: the run restarts from scratch (nothing to lose), and finishes
        assert result.code == 0, result.err
        return
    assert result.code == 4, result.err
    assert "not loaded" in result.err or "unreadable" in result.err
    assert tree(run) == before


def test_interrupted_run_reports_status_and_resumes(cli, tiny_recipe, tmp_path):
    run = _interrupted_run(tiny_recipe, tmp_path / "runs")
    shown = cli("runs", "show", run, "--json")
    assert shown.json()["status"] == "interrupted"
    assert len(list((run / "checkpoints").glob("last.*.safetensors"))) == 1
    result = cli("run", "--resume", run, "--json")
    assert result.code == 0 and result.json()["status"] == "completed"
