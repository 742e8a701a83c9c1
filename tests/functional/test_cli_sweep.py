"""`idmm sweep` and `idmm report` end to end on the tiny real-format dataset (real runs, real children)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import idmm_subprocess_cmd

# --dist loadgroup: the module's fixtures are built once, so its tests stay on one xdist worker
pytestmark = pytest.mark.xdist_group("test_cli_sweep")

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FAST = ["--set", "pretrain.epochs=1", "--set", "finetune.0.epochs=1"]


def sweep(*args: str, runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*idmm_subprocess_cmd(), "sweep", *args, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=600,
    )


def summaries(runs: Path, group: str) -> dict[str, dict]:
    return {p.name: json.loads((p / "summary.json").read_text()) for p in sorted(runs.glob(f"{group}.*"))}


@pytest.fixture(scope="module")
def method_sweep(tmp_path_factory, tiny_images):
    """A finished 2 x 2 sweep (method x seed), two cells at a time, shared by the report tests."""
    from tests.conftest import TINY_RECIPE

    tmp = tmp_path_factory.mktemp("sweep")
    recipe = tmp / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(root=tiny_images))
    runs = tmp / "runs"
    axes = ["--axis", "pretrain.method=idmm,none", "--seeds", "0,1"]
    proc = sweep(str(recipe), *axes, *FAST, "--max-parallel", "2", runs=runs)
    assert proc.returncode == 0, proc.stderr
    return recipe, runs, proc


def test_sweep_runs_every_cell_as_a_grouped_run(method_sweep):
    _, runs, proc = method_sweep
    events = [line.split()[:2] for line in proc.stderr.splitlines() if line[:1] in "▶■"]
    assert events[:2] == [["▶", "tiny.method-idmm.s0"], ["▶", "tiny.method-none.s0"]]  # two at once
    assert sorted(e[1] for e in events if e[0] == "■") == sorted(e[1] for e in events if e[0] == "▶")
    assert len(events) == 8
    done_names = {e[1] for e in events}
    for log in (runs / "sweeps" / "tiny.logs").iterdir():  # each cell's own output
        assert log.name.removesuffix(".out") in done_names and ": completed" in log.read_text()
    done = summaries(runs, "tiny")
    assert sorted(done) == ["tiny.method-idmm.s0", "tiny.method-idmm.s1", "tiny.method-none.s0", "tiny.method-none.s1"]
    for name, s in done.items():
        assert s["status"] == "completed" and s["group"] == "tiny"
        assert s["seed"] == int(name[-1])
        assert s["method"] == name.split(".")[1].removeprefix("method-")
    manifest = json.loads((runs / "sweeps" / "tiny.json").read_text())
    assert manifest["format"] == "idmm-sweep/1" and len(manifest["cells"]) == 4
    assert "idmm report tiny" in proc.stderr


def test_rerunning_skips_finished_cells(method_sweep, cli):
    # in-process: nothing trains, so no child process (and no 5-s torch import) is needed
    recipe, runs, _ = method_sweep
    before = {n: s["finished_at"] for n, s in summaries(runs, "tiny").items()}
    axes = ["--axis", "pretrain.method=idmm,none", "--seeds", "0,1"]
    again = cli("sweep", recipe, *axes, *FAST, "--json", "--runs-dir", runs)
    assert again.code == 0, again.err
    assert {r["outcome"] for r in again.json()} == {"skipped"}
    by_name = cli("sweep", "--group", "tiny", "--json", "--runs-dir", runs)
    assert by_name.code == 0 and {r["outcome"] for r in by_name.json()} == {"skipped"}
    assert {n: s["finished_at"] for n, s in summaries(runs, "tiny").items()} == before


def test_a_changed_recipe_is_refused_before_anything_runs(method_sweep, cli):
    recipe, runs, _ = method_sweep
    axes = ["--axis", "pretrain.method=idmm,none", "--seeds", "0,1"]
    changed = ["--set", "pretrain.epochs=2", "--set", "finetune.0.epochs=1"]
    result = cli("sweep", recipe, *axes, *changed, "--runs-dir", runs)
    assert result.code == 2
    err = " ".join(result.err.split())
    assert "different recipe" in err and "--group" in err


def test_bad_axes_fail_before_any_run(tiny_recipe, tmp_path, cli):
    runs = tmp_path / "runs"
    result = cli("sweep", tiny_recipe, "--axis", "pretrain.method=idmm,simclr,nope", "--runs-dir", runs)
    assert result.code == 2 and "unknown pretraining method 'nope'" in " ".join(result.err.split())
    result = cli("sweep", tiny_recipe, "--axis", "pretrain.epoch=1,2", "--runs-dir", runs)
    assert result.code == 2 and "did you mean 'epochs'" in " ".join(result.err.split())
    assert not runs.exists() or not any(runs.iterdir())


def test_report_table_markdown_csv_json(method_sweep, cli, tmp_path):
    _, runs, _ = method_sweep
    table = cli("report", "tiny", "--runs-dir", runs)
    assert table.code == 0, table.err
    assert "idmm" in table.out and "none" in table.out and "n=2" in table.out
    md = cli("report", "tiny", "--runs-dir", runs, "--format", "markdown", "--out", tmp_path / "r.md")
    assert md.code == 0 and md.out.startswith("**tiny**") and (tmp_path / "r.md").read_text() == md.out
    assert "| method | test acc |" in md.out
    data = cli("report", "tiny", "--runs-dir", runs, "--format", "json").json()
    cells = {(c["row"], c["column"]): c for c in data["cells"]}
    expected = [summaries(runs, "tiny")[f"tiny.method-idmm.s{s}"]["test_acc"] for s in (0, 1)]
    idmm = cells[("idmm", "test_acc")]
    assert idmm["n"] == 2 and sorted(idmm["values"]) == sorted(expected)
    assert idmm["mean"] == pytest.approx(sum(expected) / 2, abs=1e-4)
    csv_out = cli("report", "tiny", "--runs-dir", runs, "--out", tmp_path / "r.csv")
    assert csv_out.code == 0 and (tmp_path / "r.csv").read_text().startswith("row,column,metric,mean,std,n,paper")


def test_report_of_loose_runs_keys_them_by_what_differs(method_sweep, cli):
    _, runs, _ = method_sweep
    result = cli("report", runs / "tiny.method-idmm.s0", "tiny.method-none.s0", "--runs-dir", runs, "--format", "json")
    assert result.code == 0, result.err
    rows = {c["row"] for c in result.json()["cells"]}
    assert rows == {"idmm", "none"}  # the one recipe key that differs (seeds and names are ignored)


def test_export_of_a_finished_sweep_group(method_sweep, tmp_path):
    """idmm export GROUP --to tensorboard,mlflow,wandb: every run of the group, read back with each library's reader
    (the group is the MLflow experiment and the W&B group)."""
    for library in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(library)
    from idmm_tui.runs.store import RunDir
    from tests.tracking_readers import expected_scalars, mlflow_scalars, tensorboard_scalars, wandb_file, wandb_scalars

    _, runs, _ = method_sweep
    out = tmp_path / "mirror"
    env = {k: v for k, v in ENV.items() if not k.startswith(("MLFLOW_", "WANDB_"))} | {"WANDB_MODE": "offline"}
    proc = subprocess.run(
        [*idmm_subprocess_cmd(), "export", "tiny", "--to", "tensorboard,mlflow,wandb", "--runs-dir", str(runs),
         "--dir", str(out), "--json"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    names = sorted(summaries(runs, "tiny"))
    assert sorted({r["run"] for r in rows}) == names and len(rows) == 3 * len(names)
    for name in names:
        want = expected_scalars(RunDir(runs / name).read_metrics())
        tb, _ = tensorboard_scalars(out / "tensorboard" / "tiny" / name)
        assert want and set(want) <= set(tb)
        ml = next(r for r in rows if r["run"] == name and r["sink"] == "mlflow")
        assert ml["experiment"] == "tiny"
        got, mlrun = mlflow_scalars(ml["uri"], ml["run_id"])
        assert set(want) <= set(got) and mlrun.info.status == "FINISHED"
        assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in want.items())
        wb = next(r for r in rows if r["run"] == name and r["sink"] == "wandb")
        got, wbrun = wandb_scalars(wandb_file(out, wb["id"]))
        assert set(want) == set(got) and wbrun["run"]["group"] == "tiny" and wbrun["run"]["name"] == name


def test_report_errors(tmp_path, cli):
    result = cli("report", "nothing-here", "--runs-dir", tmp_path)
    assert result.code == 2 and "neither a sweep group nor a run directory" in result.err
    result = cli("report", "x", "--format", "xml", "--runs-dir", tmp_path)
    assert result.code == 2 and "--format" in result.err


def test_ctrl_c_stops_every_cell_and_rerunning_resumes_them(tiny_recipe, tmp_path):
    """Two cells at a time: Ctrl-C stops both with a checkpoint and starts no other; re-running resumes
    them exactly (the three cells train alike: their recipes differ only in `name`)."""
    from tests.functional.test_cli_run import final_metrics

    runs = tmp_path / "runs"
    args = [
        *idmm_subprocess_cmd(),
        "sweep",
        str(tiny_recipe),
        "--axis",
        "name=a,b,c",
        "--set",
        "pretrain.epochs=20",  # 60 steps: both cells are still pretraining when Ctrl-C comes, even under load
        "--max-parallel",
        "2",
        "--runs-dir",
        str(runs),
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    metrics = [runs / f"tiny.name-{x}" / "metrics.jsonl" for x in "ab"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not all(m.exists() and m.read_text().count("\n") >= 3 for m in metrics):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert "idmm sweep --group tiny" in err
    for x in "ab":
        assert json.loads((runs / f"tiny.name-{x}" / "summary.json").read_text())["status"] == "interrupted"
    assert not (runs / "tiny.name-c").exists()  # the sweep stopped; it did not go on to the next cell
    again = sweep("--group", "tiny", "--json", "--max-parallel", "2", runs=runs)
    assert again.returncode == 0, again.stderr
    assert [r["outcome"] for r in json.loads(again.stdout)] == ["completed"] * 3
    for x in "ab":
        assert "resumed at" in (runs / f"tiny.name-{x}" / "run.log").read_text()
    reference = final_metrics(runs / "tiny.name-c")
    assert final_metrics(runs / "tiny.name-a") == reference and final_metrics(runs / "tiny.name-b") == reference


def test_transfer_sweep_reuses_sources_and_reports_a_matrix(tiny_recipe, tmp_path, cli):
    runs = tmp_path / "runs"
    args = [str(tiny_recipe), "--source", "data.classes=[0,1],[1,2]", "--axis", "data.classes=[2,0]", *FAST]
    proc = sweep(*args, "--json", "--max-parallel", "2", runs=runs)  # a target starts once its source is done
    assert proc.returncode == 0, proc.stderr
    outcomes = {r["name"]: r["outcome"] for r in json.loads(proc.stdout)}
    assert outcomes == {
        "tiny.src.classes-0_1": "completed",
        "tiny.src.classes-1_2": "completed",
        "tiny.from-0_1.classes-2_0": "completed",
        "tiny.from-1_2.classes-2_0": "completed",
    }
    source = json.loads((runs / "tiny.src.classes-1_2" / "summary.json").read_text())
    assert [p["kind"] for p in source["plan"]] == ["pretrain"]
    target = json.loads((runs / "tiny.from-1_2.classes-2_0" / "summary.json").read_text())
    assert [p["kind"] for p in target["plan"]] == ["finetune"]
    assert target["lineage"]["run"] == "tiny.src.classes-1_2" and target["lineage"]["stage"] == "pretrain"
    report = cli("report", "tiny", "--runs-dir", runs, "--format", "json").json()
    assert report["rows"] == ["source:data.classes"] and report["columns"] == ["data.classes"]
    assert {(c["row"], c["column"]) for c in report["cells"]} == {(r, "[2,0]") for r in ("[0,1]", "[1,2]")}
    again = cli("sweep", *args, "--json", "--runs-dir", runs)  # finished sources are reused, nothing re-runs
    assert again.code == 0 and {r["outcome"] for r in again.json()} == {"skipped"}
