"""The tracking core without any tracker library: scalar mapping, the background composite (a failing sink
warns once, a slow one never blocks the caller), missing extras, the [track] recipe table, the CLI's small
things (--version, recipes)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from idmm_tui.errors import RecipeError
from idmm_tui.recipe import Recipe, TrackConfig, load_recipe, to_table
from idmm_tui.runs.store import RunDir
from idmm_tui.tracking import core, open_tracker
from idmm_tui.tracking.core import Settings, Sink, Tracker, scalars

RECORD = {"kind": "train", "stage": "pretrain", "stage_index": 0, "epoch": 1, "step": 4, "loss": 2.5, "lr": 1e-3}


def test_a_record_becomes_stage_kind_key_scalars_at_its_step():
    step, values = scalars({**RECORD, "test_acc": 50.0, "note": "x", "flag": True, "bad": float("nan")})
    assert step == 4
    assert values == {
        "pretrain/train/epoch": 1.0,
        "pretrain/train/loss": 2.5,
        "pretrain/train/lr": 1e-3,
        "pretrain/train/test_acc": 50.0,
    }


class Collect(Sink):
    name = "collect"

    def __init__(self, delay: float = 0.0, fail_on: str = ""):
        self.calls: list[str] = []
        self.delay, self.fail_on = delay, fail_on
        self.thread = ""

    def start(self, info):
        self.thread = threading.current_thread().name
        self.calls.append("start")
        return {}

    def record(self, record):
        time.sleep(self.delay)
        if self.fail_on == "record":
            raise ConnectionError("server down\nsecond line")
        self.calls.append(f"record {record['step']}")

    def stage(self, event, stage, info):
        self.calls.append(f"{event} {stage}")

    def finish(self, summary):
        self.calls.append("finish")


def tracker(tmp_path: Path, *sinks: Sink, timeout: float = 5.0) -> tuple[Tracker, list[str]]:
    warnings: list[str] = []
    run = RunDir(tmp_path)
    return Tracker(
        run, {}, list(sinks), Settings(dir=tmp_path), warn=warnings.append, flush_timeout_s=timeout
    ), warnings


def test_a_failing_sink_warns_once_and_the_others_go_on(tmp_path):
    good, bad = Collect(), Collect(fail_on="record")
    bad.name = "bad"
    t, warnings = tracker(tmp_path, bad, good)
    t.start({})
    for step in range(5):
        t.record({**RECORD, "step": step})
    t.stage("completed", "pretrain", {})
    t.finish({"status": "completed"})
    assert good.calls == ["start", *[f"record {s}" for s in range(5)], "completed pretrain", "finish"]
    assert good.thread == "idmm-tracking"  # never on the training thread
    assert len(warnings) == 1 and warnings[0].startswith("tracking: bad stopped (ConnectionError: server down)")
    assert "idmm export" in warnings[0] and "second line" not in warnings[0]


def test_a_slow_sink_never_blocks_the_training_loop(tmp_path):
    slow = Collect(delay=0.5)
    t, warnings = tracker(tmp_path, slow, timeout=0.2)
    t.start({})
    tick = time.perf_counter()
    for step in range(20):
        t.record({**RECORD, "step": step})
    assert time.perf_counter() - tick < 0.1  # 20 records would take 10 s in the sink
    tick = time.perf_counter()
    t.finish({"status": "completed"})
    assert time.perf_counter() - tick < 1.0  # waits flush_timeout_s at most
    assert len(warnings) == 1 and "gave up waiting for collect after 0.2 s" in warnings[0]


def test_a_missing_extra_is_one_warning_naming_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setattr(core.importlib.util, "find_spec", lambda name: None)
    warnings: list[str] = []
    recipe = Recipe(track=TrackConfig(sinks=["wandb"]))
    assert isinstance(open_tracker(RunDir(tmp_path), recipe, warn=warnings.append), core.NullTracker)
    assert warnings == ["tracking: wandb is not installed: pip install 'idmm[wandb]' (the run goes on without it)"]
    assert isinstance(open_tracker(RunDir(tmp_path), Recipe(), warn=warnings.append), core.NullTracker)
    assert isinstance(open_tracker(RunDir(tmp_path), recipe, warn=warnings.append, enabled=False), core.NullTracker)


def test_track_table_is_validated_like_every_recipe_table(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[track]\nsink = ["tensorboard"]\n')
    with pytest.raises(RecipeError, match=r"track\.sink: unknown key \(did you mean 'sinks'\?\)"):
        load_recipe(path)
    path.write_text('[track]\nsinks = ["neptune"]\n')
    with pytest.raises(RecipeError, match=r"track\.sinks\.0"):
        load_recipe(path)
    path.write_text('[track]\nsinks = "tensorboard, wandb,tensorboard"\nwandb_mode = "offline"\n')
    recipe = load_recipe(path)
    assert recipe.track.sinks == ["tensorboard", "wandb"]
    assert to_table(recipe)["track"]["sinks"] == ["tensorboard", "wandb"]
    assert "track" not in to_table(Recipe())  # recipes without tracking stay as they were
    assert load_recipe(path, ["track.sinks=none"]).track.sinks == []


def test_version(cli):
    from idmm_tui import __version__

    r = cli("--version")
    assert r.code == 0 and r.out == f"idmm {__version__}\n"


def test_recipes_list_and_show(cli, tmp_path):
    listed = cli("recipes", "list", "--json")
    names = {r["name"]: r for r in listed.json()}
    assert listed.code == 0 and {"demo", "paper-base", "flowers"} <= set(names)
    assert names["flowers"]["base"] == "paper-base.toml"
    shown = cli("recipes", "show", "demo")
    assert shown.code == 0 and 'name = "demo"' in shown.out
    r = cli("recipes", "show", "flowers", "--out", tmp_path / "mine" / "f.toml")
    assert r.code == 0, r.err
    assert (tmp_path / "mine" / "f.toml").is_file() and (tmp_path / "mine" / "paper-base.toml").is_file()
    assert load_recipe(tmp_path / "mine" / "f.toml").data.dataset == "flowers102"
    again = cli("recipes", "show", "flowers", "--out", tmp_path / "mine" / "f.toml")
    assert again.code == 2 and "--force" in again.err
    unknown = cli("recipes", "show", "demoo")
    assert unknown.code == 2 and "did you mean 'demo'" in unknown.err.lower()


def test_a_shipped_recipe_is_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_recipe("demo").name == "demo"
    assert load_recipe("recipes/demo.toml").name == "demo"
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe("elsewhere/demo.toml")


def test_tracking_is_no_recipe_setting_when_runs_are_compared():
    from idmm_tui.recipe import recipe_keys
    from idmm_tui.tracking.core import hyperparameters

    table = to_table(Recipe(track=TrackConfig(sinks=["mlflow"])))
    assert "track" in table
    assert not any(k.startswith("track.") for k in recipe_keys(table))
    params = hyperparameters(table)
    assert params["pretrain.method"] == "idmm" and not any(k.startswith("track.") for k in params)
    assert params["pretrain.global_scale"] == "[0.14, 1.0]"  # lists as text
