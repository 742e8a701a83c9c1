"""`idmm eval linear`, `idmm viz tsne` and `idmm viz params` on a tiny real run, and their error paths."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from PIL import Image

from idmm_tui.engine.distributed import Placement
from idmm_tui.evaluation.params import backbone_params
from idmm_tui.experiments.groups import Cell, Group
from idmm_tui.fsutil import sha256_file
from idmm_tui.launch import create_run, execute
from tests.conftest import TINY_RECIPE

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_cli_eval")

BRAILLE = range(0x2800, 0x2900)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_images) -> Path:
    """One real tiny run: IDMM pretraining (2 epochs at 16 px), fine-tuning (2 epochs at 24 px); 3 classes."""
    root = tmp_path_factory.mktemp("eval-run")
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    run, resolved = create_run(recipe, [], root / "runs", "src")
    execute(run, resolved, Placement(torch.device("cpu")))
    return run.path


@pytest.fixture()
def run_copy(trained, tmp_path) -> Path:
    """A private copy of the tiny run (the commands write into it), in its own runs directory."""
    dest = tmp_path / "runs" / "tiny"
    shutil.copytree(trained, dest)
    return dest


def read_summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def edit_summary(run: Path, **changes) -> None:
    summary = read_summary(run)
    summary.update(changes)
    (run / "summary.json").write_text(json.dumps(summary))


def has_braille(text: str) -> bool:
    return any(ord(ch) in BRAILLE for ch in text)


# ---------------------------------------------------------------------------------------------
# idmm eval linear


def test_eval_linear_records_the_probe_in_the_run(cli, run_copy):
    before = read_summary(run_copy)
    r = cli("eval", "linear", "tiny", "--runs-dir", run_copy.parent, "--json")
    assert r.code == 0, r.err
    record = r.json()
    assert record["stage"] == "pretrain" and record["stage_kind"] == "pretrain"  # the default stage
    assert (record["resolution"], record["feature_dim"], record["epochs"]) == (16, 128, 100)
    assert (record["train_size"], record["test_size"], record["num_classes"]) == (24, 12, 3)
    assert 0.0 <= record["test_acc"] <= 100.0 and record["train_acc"] >= 90.0  # 24 points in 128-d: separable
    assert record["weights_sha256"] == sha256_file(run_copy / "checkpoints" / "pretrain.safetensors")
    assert record["wall_time_s"] > 0
    assert json.loads((run_copy / "eval" / "linear-pretrain.json").read_text()) == record
    after = read_summary(run_copy)
    assert after["evals"] == {"linear": {"pretrain": record}}
    assert {k: v for k, v in after.items() if k != "evals"} == before  # nothing else touched

    r = cli("eval", "linear", str(run_copy), "--stage", "finetune_24", "--epochs", "5")
    assert r.code == 0, r.err
    assert "linear probe of tiny stage finetune_24 (24 px" in r.out and "test top-1" in r.out
    assert "linear-finetune_24.json" in r.err
    evals = read_summary(run_copy)["evals"]["linear"]
    assert set(evals) == {"pretrain", "finetune_24"} and evals["finetune_24"]["epochs"] == 5
    assert evals["pretrain"] == record  # the first result kept

    again = cli("eval", "linear", str(run_copy), "--json").json()  # deterministic: same numbers
    assert {k: again[k] for k in ("train_acc", "test_acc", "final_loss")} == {
        k: record[k] for k in ("train_acc", "test_acc", "final_loss")
    }


def test_eval_linear_default_stage_without_pretraining_is_the_last_one(cli, run_copy):
    summary = read_summary(run_copy)
    summary["plan"] = [p for p in summary["plan"] if p["name"] != "pretrain"]
    del summary["stages"]["pretrain"]
    (run_copy / "summary.json").write_text(json.dumps(summary))
    r = cli("eval", "linear", str(run_copy), "--epochs", "2", "--json")
    assert r.code == 0, r.err
    assert r.json()["stage"] == "finetune_24" and r.json()["resolution"] == 24


def test_eval_linear_errors_leave_everything_intact(cli, run_copy):
    runs = run_copy.parent
    summary_bytes = (run_copy / "summary.json").read_bytes()

    r = cli("eval", "linear", "no-such-run", "--runs-dir", runs)
    assert r.code == 2 and "no run directory" in r.err

    r = cli("eval", "linear", str(run_copy), "--stage", "finetune_448")
    assert r.code == 2 and "not a stage of this run" in r.err and "pretrain, finetune_24" in r.err

    r = cli("eval", "linear", str(run_copy), "--epochs", "0")
    assert r.code == 2

    # a planned stage that has not finished: no weights to evaluate
    edit_summary(run_copy, stages={"pretrain": read_summary(run_copy)["stages"]["pretrain"]})
    r = cli("eval", "linear", str(run_copy), "--stage", "finetune_24")
    assert r.code == 2 and "has not finished" in r.err
    (run_copy / "summary.json").write_bytes(summary_bytes)

    # a corrupt checkpoint: refused by its sha256, never loaded, never rewritten
    weights = run_copy / "checkpoints" / "pretrain.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    r = cli("eval", "linear", str(run_copy))
    assert r.code == 4 and "corrupt" in r.err and "Traceback" not in r.err
    assert weights.read_bytes() == bytes(data)

    # weights gone altogether
    weights.unlink()
    r = cli("eval", "linear", str(run_copy), "--stage", "pretrain")
    assert r.code == 4 and "missing" in r.err

    assert (run_copy / "summary.json").read_bytes() == summary_bytes
    assert not (run_copy / "eval").exists()


def test_eval_linear_refuses_a_running_run(cli, run_copy):
    edit_summary(run_copy, status="running", pid=os.getpid(), host=socket.gethostname())
    summary_bytes = (run_copy / "summary.json").read_bytes()
    r = cli("eval", "linear", str(run_copy))
    assert r.code == 2 and "still running" in r.err
    assert (run_copy / "summary.json").read_bytes() == summary_bytes and not (run_copy / "eval").exists()
    # a "running" run whose process is gone is interrupted, and can be evaluated
    edit_summary(run_copy, pid=2**31 - 2)
    assert cli("eval", "linear", str(run_copy), "--epochs", "1").code == 0


# ---------------------------------------------------------------------------------------------
# idmm viz tsne


def test_viz_tsne_writes_a_png_and_reports_clustering(cli, run_copy):
    r = cli("viz", "tsne", "tiny", "--runs-dir", run_copy.parent, "--json", "--no-terminal")
    assert r.code == 0, r.err
    result = r.json()
    png = run_copy / "eval" / "tsne-pretrain-test.png"
    assert result["png"] == str(png)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1000, 700)
    assert (result["stage"], result["split"], result["points"], result["classes"]) == ("pretrain", "test", 12, 3)
    assert result["perplexity"] == pytest.approx(11 / 3, abs=1e-3)  # lowered from 30 for 12 points
    assert result["knn_k"] == 3  # 4 test images per class: 3 neighbours, not 10 (a vote no class could win)
    assert 0.0 <= result["knn_acc_2d"] <= 100.0 and 0.0 <= result["knn_acc_features"] <= 100.0
    assert result["iterations"] == 750 and result["kl"] >= 0.0  # openTSNE: 250 exaggerated + 500
    assert not has_braille(r.out) and not has_braille(r.err)
    assert "evals" not in read_summary(run_copy)  # pictures do not touch the summary


def test_viz_tsne_terminal_plot_options_and_custom_path(cli, run_copy, tmp_path):
    out = tmp_path / "pictures" / "fig2.png"
    r = cli(
        "viz",
        "tsne",
        str(run_copy),
        "--stage",
        "finetune_24",
        "--split",
        "train",
        "--max-points",
        "10",
        "--classes",
        "2",
        "--perplexity",
        "2",
        "--seed",
        "5",
        "--out",
        out,
    )
    assert r.code == 0, r.err
    assert has_braille(r.out) and "class_0" in r.out and "class_1" in r.out and "class_2" not in r.out
    assert "10 train images, 2 classes, perplexity 2" in r.out and str(out) in r.err
    with Image.open(out) as image:
        assert image.size == (1000, 700)
    assert not (run_copy / "eval").exists()

    r = cli("viz", "tsne", str(run_copy), "--max-points", "6", "--json")  # plot on stderr, JSON alone on stdout
    assert r.code == 0 and has_braille(r.err) and r.json()["points"] == 6


def test_viz_tsne_errors(cli, run_copy):
    r = cli("viz", "tsne", str(run_copy), "--split", "val")
    assert r.code == 2 and "--split" in r.err
    r = cli("viz", "tsne", str(run_copy), "--stage", "nope")
    assert r.code == 2 and "not a stage" in r.err
    r = cli("viz", "tsne", str(run_copy), "--max-points", "3")
    assert r.code == 2
    assert not (run_copy / "eval").exists()


# ---------------------------------------------------------------------------------------------
# idmm viz params


def clone(run: Path, name: str, **summary) -> Path:
    dest = run.parent / name
    shutil.copytree(run, dest)
    edit_summary(dest, name=name, **summary)
    return dest


def test_viz_params_groups_runs_by_backbone_and_method(cli, run_copy, tmp_path):
    runs = run_copy.parent
    clone(run_copy, "micro-idmm-s1", backbone="vit_micro_p4", method="idmm", seed=1, test_acc=50.0)
    clone(run_copy, "micro-idmm-s2", backbone="vit_micro_p4", method="idmm", seed=2, test_acc=60.0)
    clone(run_copy, "nano-none", backbone="vit_nano_p2", method="none", test_acc=40.0)
    clone(run_copy, "unfinished", backbone="vit_pico_p4", method="idmm", status="failed", test_acc=None)
    Group(
        "size",
        runs,
        {},
        [Cell("micro-idmm-s1", {"seed": "1"}), Cell("micro-idmm-s2", {"seed": "2"}), Cell("unfinished", {"seed": "0"})],
    ).save()

    png = tmp_path / "fig3.png"
    r = cli("viz", "params", "size", "nano-none", "--runs-dir", runs, "--json", "--out", png)
    assert r.code == 0, r.err
    table = r.json()
    assert table["metric"] == "test_acc" and table["png"] == str(png)
    points = {(p["backbone"], p["method"]): p for p in table["points"]}
    assert set(points) == {("vit_micro_p4", "idmm"), ("vit_nano_p2", "none")}
    micro = points[("vit_micro_p4", "idmm")]
    assert micro["value"] == pytest.approx(55.0) and micro["n"] == 2 and micro["std"] == pytest.approx(7.0711, 1e-3)
    assert micro["params"] == backbone_params("vit_micro_p4") == 808_064
    assert points[("vit_nano_p2", "none")]["std"] is None
    assert [p["backbone"] for p in table["points"]] == ["vit_nano_p2", "vit_micro_p4"]  # by size
    assert table["skipped"] == [{"run": "unfinished", "reason": "no test_acc (status failed)"}]
    assert has_braille(r.err)  # the terminal plot goes to stderr with --json
    with Image.open(png) as image:
        assert image.size == (1000, 700)

    r = cli("viz", "params", "size", "nano-none", "--runs-dir", runs, "--no-terminal")
    assert r.code == 0, r.err
    assert "vit_micro_p4" in r.out and "55.00" in r.out and "7.07" in r.out and not has_braille(r.out)
    assert "left out unfinished" in r.err

    r = cli(
        "viz",
        "params",
        "micro-idmm-s1",
        "--runs-dir",
        runs,
        "--metric",
        "stages.pretrain.loss",
        "--json",
        "--no-terminal",
    )
    assert r.code == 0 and r.json()["points"][0]["value"] == read_summary(run_copy)["stages"]["pretrain"]["loss"]


def test_viz_params_errors(cli, run_copy):
    runs = run_copy.parent
    r = cli("viz", "params", "no-such-group", "--runs-dir", runs)
    assert r.code == 2 and "neither a sweep group nor a run directory" in r.err
    r = cli("viz", "params", "tiny", "--runs-dir", runs, "--metric", "evals.linear.pretrain.test_acc")
    assert r.code == 2 and "none of the 1 runs has a value" in r.err


def test_help_shows_examples(cli):
    for args in (("eval", "linear"), ("viz", "tsne"), ("viz", "params")):
        r = cli(*args, "--help")
        assert r.code == 0 and "Examples" in r.out
