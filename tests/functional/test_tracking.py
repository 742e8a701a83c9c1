"""Tracking sinks end to end: a tiny run mirrored to TensorBoard, MLflow and W&B (offline) as it trains,
read back with each library's own reader; a sink whose server is down; `idmm export` of a sweep group."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from idmm_tui.runs.store import RunDir
from tests.conftest import idmm_subprocess_cmd
from tests.tracking_readers import (
    expected_scalars,
    mlflow_scalars,
    tensorboard_scalars,
    wandb_file,
    wandb_run,
    wandb_scalars,
)

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_tracking")

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")
pytest.importorskip("wandb")

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "pretrain.epochs=1", "--set", "finetune.0.epochs=1"]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "WANDB_"))}
    return {**base, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true", **extra}


def idmm(*args: str, cwd: Path = REPO, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*idmm_subprocess_cmd(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env(**extra),
        timeout=600,
    )


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, tiny_images):
    """A tiny run of a (one-run) sweep group mirrored to TensorBoard, MLflow and W&B (offline) as it trained,
    then a t-SNE picture of it: the tests read the mirrors back with each library's own reader."""
    from tests.conftest import TINY_RECIPE

    tmp = tmp_path_factory.mktemp("tracked")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    runs = tmp / "runs"
    proc = idmm(
        "run", recipe, "--runs-dir", runs, "--name", "t", "--group", "tiny", "--track", "tensorboard,mlflow,wandb",
        *FAST,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = RunDir(runs / "t")
    tsne = idmm("viz", "tsne", run.path, "--no-terminal", "--max-points", "12", "--device", "cpu")
    assert tsne.returncode == 0, tsne.stderr
    assert "mirrored to tensorboard, mlflow, wandb" in tsne.stderr
    return runs, run, run.read_summary(), proc


def test_tensorboard_event_file_holds_every_metric(tracked):
    runs, run, printed, _ = tracked
    state = json.loads((run.path / "tracking.json").read_text())
    logdir = Path(state["tensorboard"]["logdir"])
    assert logdir == runs.absolute() / "tracking" / "tensorboard" / "tiny" / "t"  # grouped by sweep
    got, acc = tensorboard_scalars(logdir)
    want = expected_scalars(run.read_metrics())
    assert want and set(want) <= set(got)
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in want.items())
    tags = acc.Tags()
    texts = set(tags["tensors"])
    assert {"idmm/recipe/text_summary", "idmm/summary/text_summary", "pretrain/events/text_summary"} <= texts
    assert any(t.startswith("eval/tsne-") for t in tags["images"])  # the picture made after training
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["pretrain.method"].string_value == "idmm" and hparams["pretrain.epochs"].number_value == 1


def test_mlflow_store_holds_every_metric_the_recipe_and_the_summary(tracked):
    _, run, printed, _ = tracked
    state = json.loads((run.path / "tracking.json").read_text())["mlflow"]
    assert state["uri"].startswith("file:") and state["experiment"] == "tiny"  # the sweep group
    got, mlrun = mlflow_scalars(state["uri"], state["run_id"])
    want = expected_scalars(run.read_metrics())
    assert set(want) <= set(got)
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in want.items())
    assert got[("test_acc", 0)] == pytest.approx(printed["test_acc"])
    assert mlrun.info.status == "FINISHED" and mlrun.data.tags["idmm.run"] == run.name
    assert mlrun.data.params["pretrain.method"] == "idmm" and mlrun.data.params["model.backbone"] == "vit_micro_p4"
    assert mlrun.data.tags["idmm.stage.pretrain"] == "completed"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=state["uri"])
    artifacts = {a.path for a in client.list_artifacts(state["run_id"])} | {
        a.path for a in client.list_artifacts(state["run_id"], "eval")
    }
    assert "summary.json" in artifacts and any(p.startswith("eval/tsne-") for p in artifacts)


def test_wandb_offline_run_holds_every_metric_and_the_recipe(tracked):
    runs, run, printed, _ = tracked
    state = json.loads((run.path / "tracking.json").read_text())["wandb"]
    assert state["mode"] == "offline"
    path = wandb_file(runs / "tracking", state["id"])
    got, wb = wandb_scalars(path)
    want = expected_scalars(run.read_metrics())
    assert want and set(want) == set(got)
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in want.items())
    assert wb["run"]["name"] == run.name and wb["run"]["project"] == "idmm" and wb["run"]["group"] == "tiny"
    assert wb["config"]["pretrain"]["method"] == "idmm"
    assert wb["summary"]["test_acc"] == pytest.approx(printed["test_acc"])
    assert wb["summary"]["stages/finetune_24/status"] == "completed"  # stage boundaries
    # the t-SNE picture, logged to the same W&B run (resumed by id) when it was made
    later = [wandb_run(p) for p in sorted((runs / "tracking").glob(f"wandb/*-{state['id']}/run-*.wandb"))]
    assert any(any(k.startswith("eval/tsne-") for row in r["history"] for k in row) for r in later)


def test_training_output_stays_clean(tracked):
    _, run, _, proc = tracked
    assert "Traceback" not in proc.stderr and "tracking:" not in proc.stderr
    assert "tracking:" not in run.log.read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sinks_whose_server_is_down_or_login_missing_warn_once_and_the_run_completes(tiny_recipe, tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    runs = tmp_path / "runs"
    home = tmp_path / "home"  # no ~/.netrc: no W&B login
    home.mkdir()
    proc = idmm(
        "run", tiny_recipe, "--runs-dir", runs, "--name", "down", "--json", "--track", "mlflow,wandb,tensorboard",
        "--set", f"track.mlflow_uri={json.dumps(uri)}", "--set", 'track.wandb_mode="online"', *FAST,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", HOME=str(home),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["status"] == "completed"
    assert printed["run_dir"] == str((runs / "down").absolute())  # idmm run --json names its run directory
    assert {k: v for k, v in printed.items() if k != "run_dir"} == RunDir(runs / "down").read_summary()
    log = (runs / "down" / "run.log").read_text()
    for sink in ("mlflow", "wandb"):  # one warning each, on the terminal and in run.log
        assert log.count(f"tracking: {sink} stopped") == 1, log
        assert proc.stderr.count(f"tracking: {sink} stopped") == 1, proc.stderr
    assert "No API key" in log and f"idmm export {runs / 'down'} --to wandb" in log
    # the other sink went on
    state = json.loads((runs / "down" / "tracking.json").read_text())
    assert "tensorboard" in state and "mlflow" not in state and "wandb" not in state


def test_export_refuses_unknown_sinks_and_refs(tmp_path, cli):
    bad = cli("export", "nothing", "--to", "neptune", "--runs-dir", tmp_path)
    assert bad.code == 2 and "unknown tracking sink 'neptune'" in bad.err
    missing = cli("export", "nothing", "--to", "tensorboard", "--runs-dir", tmp_path)
    assert missing.code == 2 and "neither a sweep group nor a run directory" in missing.err
