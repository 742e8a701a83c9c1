"""The ``idmm tui`` dashboard: its pure helpers and every screen under Textual's Pilot.

Fixture runs are written here with fixed names, timestamps and metrics (``make_fixture_runs``), so
that ``test_tui_snapshots.py`` can take deterministic SVG snapshots of them; the system pane (live
CPU values) is off in these apps unless a test turns it on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import pytest

from idmm_tui.runs.store import iter_metrics
from idmm_tui.tui.colors import assign_colors
from idmm_tui.tui.curves import RunCurves
from idmm_tui.tui.downsample import downsample, ema
from idmm_tui.tui.format import fmt_duration
from idmm_tui.tui.recipe_diff import recipe_diff
from idmm_tui.tui.runs_table import run_row, sort_rows
from idmm_tui.tui.tailer import FileTail, RunWatcher
from idmm_tui.tui.timeline import stage_eta, timeline

STARTED = "2026-11-26T12:00:00+0000"


# ---------------------------------------------------------------------------------------------
# fixture runs


def make_run(
    runs_dir: Path,
    name: str,
    *,
    status: str = "completed",
    method: str = "idmm",
    backbone: str = "vit_micro_p4",
    dataset: str = "embedded",
    started: str = STARTED,
    pre_epochs: int = 4,
    ft_epochs: int = 3,
    steps_per_epoch: int = 8,
    log_every: int = 2,
    seed: int = 0,
    acc_base: float = 60.0,
    lr: float = 1e-3,
    garbage: bool = False,
    pid: int | None = None,
) -> Path:
    """A run directory as the trainer writes it (summary, metrics, log, recipe), deterministic."""
    run = Path(runs_dir) / name
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    rng = random.Random(name)
    plan = []
    if method != "none":
        plan.append({"name": "pretrain", "kind": "pretrain", "epochs": pre_epochs, "resolution": 16})
    plan.append({"name": "finetune_28", "kind": "finetune", "epochs": ft_epochs, "resolution": 28})
    stop_stage = None if status == "completed" else len(plan) - 1
    lines: list[dict] = []
    stages: dict[str, dict] = {}
    current: dict = {}
    t = 0.0
    for si, p in enumerate(plan):
        total = p["epochs"] * steps_per_epoch
        last_epoch = p["epochs"] if stop_stage is None or si < stop_stage else max(1, p["epochs"] // 2)
        for e in range(1, last_epoch + 1):
            for k in range(1, steps_per_epoch + 1):
                step = (e - 1) * steps_per_epoch + k
                t += 0.5
                if step % log_every == 0:
                    loss = (5.0 if p["kind"] == "pretrain" else 2.0) * math.exp(-step / total) + rng.random() * 0.2
                    lines.append(
                        {
                            "kind": "train",
                            "stage": p["name"],
                            "stage_index": si,
                            "epoch": e,
                            "step": step,
                            "loss": round(loss, 6),
                            "lr": lr * 0.5 * (1 + math.cos(math.pi * step / total)),
                            "images_per_s": round(900 + rng.random() * 100, 2),
                            "time": round(t, 3),
                        }
                    )
            record = {
                "kind": "epoch",
                "stage": p["name"],
                "stage_index": si,
                "epoch": e,
                "step": e * steps_per_epoch,
                "loss": lines[-1]["loss"],
                "lr": lines[-1]["lr"],
                "images_per_s": 950.0,
                "time": round(t, 3),
            }
            if p["kind"] == "finetune":
                record["test_acc"] = round(acc_base + 20 * (1 - math.exp(-e / 2)) + rng.random(), 4)
            elif e % 2 == 0 or e == p["epochs"]:  # the kNN monitor (pretrain.knn_every = 2)
                record["knn_acc"] = round(acc_base / 2 + 5 * e + rng.random(), 4)
            lines.append(record)
            current = {
                "stage": p["name"],
                "stage_index": si,
                "epoch": e,
                "epochs": p["epochs"],
                "step": e * steps_per_epoch,
                "total_steps": total,
                "loss": record["loss"],
                "images_per_s": 950.0,
                **({"test_acc": record["test_acc"]} if "test_acc" in record else {}),
            }
        if stop_stage is None or si < stop_stage:
            stages[p["name"]] = {
                "kind": p["kind"],
                "resolution": p["resolution"],
                "epochs": p["epochs"],
                "status": "completed",
                "loss": record["loss"],
                "images_per_s": 950.0,
                **({"test_acc": record["test_acc"]} if "test_acc" in record else {}),
            }
    summary = {
        "format": "idmm-run/1",
        "name": name,
        "status": status,
        "started_at": started,
        "updated_at": started,
        "backbone": backbone,
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "init": "",
        "plan": plan,
        "stages": stages,
        "wall_time_s": t,
        "test_acc": None,
        "current": current,
    }
    if status == "completed":
        summary.update(finished_at=started, test_acc=stages["finetune_28"]["test_acc"], current=None)
    if status == "failed":
        summary["error"] = "CUDA out of memory (fixture)"
    if status == "running":
        summary.update(pid=pid if pid is not None else 2**22 + 12345, host=None)
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    body = "".join(json.dumps(r) + "\n" for r in lines)
    if garbage:  # malformed lines in the middle, a partial line at the end
        half = body.index("\n", len(body) // 2) + 1
        body = body[:half] + 'not json\n{"kind": "train", broken\n[1, 2]\n\n' + body[half:] + '{"kind":"train","sta'
    (run / "metrics.jsonl").write_text(body)
    (run / "run.log").write_text("".join(f"2026-11-26 12:00:{i:02d} {name}: log line {i}\n" for i in range(30)))
    (run / "recipe.toml").write_text(
        f'name = "demo"\nseed = {seed}\n\n[data]\ndataset = "{dataset}"\n\n[model]\nbackbone = "{backbone}"\n\n'
        f'[pretrain]\nmethod = "{method}"\nepochs = {pre_epochs}\nlr = {lr}\n\n[[finetune]]\nepochs = {ft_epochs}\n'
        "resolution = 28\n"
    )
    return run


def make_fixture_runs(runs_dir: Path) -> None:
    make_run(runs_dir, "demo-idmm", started="2026-11-26T12:00:00+0000")
    make_run(runs_dir, "demo-random-init", method="none", started="2026-11-26T12:30:00+0000", acc_base=40.0)
    make_run(
        runs_dir, "demo-no-cutmix", status="interrupted", started="2026-11-26T13:00:00+0000", garbage=True, lr=5e-4
    )
    make_run(
        runs_dir,
        "flowers-deit",
        status="failed",
        backbone="deit_tiny_patch16_224",
        dataset="flowers102",
        started="2026-11-26T11:00:00+0000",
    )
    make_run(runs_dir, "pets-killed", status="running", dataset="pets", started="2026-11-26T10:00:00+0000")


@pytest.fixture()
def fixture_runs(tmp_path, monkeypatch) -> Path:
    """Five runs under ./runs (relative, so that no tmp path appears on screen)."""
    monkeypatch.chdir(tmp_path)
    make_fixture_runs(tmp_path / "runs")
    return Path("runs")


def make_app(runs_dir: Path, **kwargs):
    from idmm_tui.tui.app import IdmmApp

    options = {"show_system": False, "scan_interval": 0.05, "tail_interval": 0.05, "recipes_dir": Path("recipes")}
    options.update(kwargs)
    return IdmmApp(runs_dir, **options)


def pilot_test(fn):
    """Run an ``async def`` test with ``asyncio.run`` (no pytest async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.05)


# ---------------------------------------------------------------------------------------------
# pure helpers (no Textual)


def test_downsample_keeps_ends_and_extremes_within_budget():
    xs = np.arange(100_000, dtype=float)
    ys = np.sin(xs / 1000.0)
    ys[31_337] = 50.0  # a spike must survive
    ys[77_777] = -40.0
    ys[5] = np.nan  # a diverged value is dropped, not plotted
    dx, dy = downsample(xs, ys, 200)
    assert len(dx) <= 200 and dx[0] == 0 and dx[-1] == 99_999
    assert np.all(np.diff(dx) > 0) and 50.0 in dy and -40.0 in dy and np.isfinite(dy).all()
    short_x, short_y = downsample([1, 2, 3], [3.0, 2.0, 1.0], 200)
    assert short_x.tolist() == [1, 2, 3] and short_y.tolist() == [3, 2, 1]


def test_ema_is_incremental_and_debiased():
    values = [1.0, 2.0, 3.0, float("nan"), 4.0]
    full, _ = ema(values, 0.9)
    head, state = ema(values[:2], 0.9)
    tail, _ = ema(values[2:], 0.9, state=state)
    assert np.allclose(np.nan_to_num(full), np.nan_to_num(head + tail))
    assert full[0] == pytest.approx(1.0)  # debiased: no pull towards 0


def test_file_tail_reads_complete_lines_only_and_restarts_on_rewrite(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = FileTail(path)
    assert tail.poll() == (False, [])
    path.write_text('{"a": 1}\n{"b": ')
    assert tail.poll() == (False, ['{"a": 1}'])
    with open(path, "a") as handle:
        handle.write("2}\n")
    assert tail.poll() == (False, ['{"b": 2}'])
    tmp = tmp_path / "new"
    tmp.write_text('{"a": 1}\n')
    os.replace(tmp, path)  # what a resume's truncate_metrics does (atomic rewrite)
    assert tail.poll() == (True, ['{"a": 1}'])


def test_run_watcher_skips_malformed_lines(tmp_path):
    run = make_run(tmp_path, "junk", status="interrupted", garbage=True)
    poll = RunWatcher(run).poll()
    assert poll.summary["name"] == "junk" and poll.recipe_text.startswith('name = "demo"')
    good = list(iter_metrics(run / "metrics.jsonl"))  # the core's reader: the same records
    assert poll.records == good and len(good) == 25 and len(poll.log_lines) == 30
    curves = RunCurves()
    curves.add(poll.records + [{"stage": 3}, {"stage": "pretrain", "loss": "NaN?", "step": None}])
    xs, ys = curves.stages["pretrain"].xy("loss")
    assert len(xs) == len([r for r in good if r["stage"] == "pretrain" and r["kind"] == "train"])


def test_rows_status_timeline_eta_and_diff(tmp_path):
    running = make_run(tmp_path, "live", status="running", pid=os.getpid())
    summary = json.loads((running / "summary.json").read_text())
    row = run_row(running, summary)
    assert (row.status, row.stage, row.epoch) == ("running", "finetune_28", "1/3")
    assert [s.state for s in timeline(summary)] == ["done", "running"]
    curves = RunCurves()
    curves.add(RunWatcher(running).poll().records)
    assert stage_eta(summary, curves) == pytest.approx(16 / 2.0)  # 16 steps left at 2 steps/s
    summary["pid"] = 2**22 + 999  # no such process: the run was killed hard
    assert run_row(running, summary).status == "interrupted"  # the core's effective status
    assert run_row(running, {}).status == "starting"  # empty or unreadable summary: never raises
    rows = [
        run_row(running, {"name": "b", "test_acc": 50.0, "status": "completed"}),
        run_row(running, {"name": "a", "status": "failed"}),
        run_row(running, {"name": "c", "test_acc": 70.0, "status": "completed"}),
    ]
    assert [r.name for r in sort_rows(rows, "test_acc", True)] == ["c", "b", "a"]  # missing last
    assert [r.name for r in sort_rows(rows, "test_acc", False)] == ["b", "c", "a"]
    assert fmt_duration(3725) == "1h02m" and fmt_duration(None) == "–"
    diff = recipe_diff([{"seed": 0, "pretrain.method": "idmm"}, {"seed": 0, "pretrain.method": "none", "x": 1}])
    assert [key for key, _ in diff] == ["pretrain.method", "x"]
    colors = assign_colors(["a", "b", "c", "d"])
    assert len(set(colors.values())) == 4 and assign_colors(["c"])["c"] == assign_colors(["c", "d"])["c"]


def test_screens_do_not_import_the_app():
    """Screens post messages to the app; none imports it (not even for type checking)."""
    import ast

    screens = Path(__file__).parents[2] / "idmm_tui" / "tui" / "screens"
    for path in sorted(screens.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "idmm_tui.tui.app" or n.startswith("idmm_tui.tui.app.") for n in names), path.name


# ---------------------------------------------------------------------------------------------
# screens under Pilot


@pilot_test
async def test_runs_table_lists_sorts_filters_and_opens(fixture_runs):
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.screens.runs import RunsScreen

    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: screen.table.row_count == 5, what="5 rows")
        names = [r.name for r in screen.visible_rows()]
        assert names == ["demo-no-cutmix", "demo-random-init", "demo-idmm", "flowers-deit", "pets-killed"]
        statuses = {r.name: r.status for r in screen.rows}
        assert statuses["pets-killed"] == "interrupted" and statuses["flowers-deit"] == "failed"
        for _ in range(10):  # o cycles through the columns
            if screen.sort_column == "test_acc":
                break
            await pilot.press("o")
        assert screen.sort_column == "test_acc" and screen.sort_reverse
        accs = [r.test_acc for r in screen.visible_rows()]
        assert accs == sorted(accs, reverse=True) and accs[0] > 75
        await pilot.press("O")
        assert [r.name for r in screen.visible_rows()][0] == "demo-random-init"  # the worst: 56%
        await pilot.press("slash", *"completed idmm")
        assert screen.query_text == "completed idmm"
        assert [r.name for r in screen.visible_rows()] == ["demo-idmm"]
        await pilot.press("enter")  # back to the table, filter kept
        assert app.focused is screen.table and screen.table.row_count == 1
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen) and app.screen.path.name == "demo-idmm"
        await pilot.press("escape")
        await pilot.press("escape")  # clears the filter
        assert screen.query_text == "" and screen.table.row_count == 5
        # a run appearing in another terminal shows up without any key press
        make_run(fixture_runs, "new-run", started="2026-11-26T14:00:00+0000")
        await wait_for(pilot, lambda: screen.table.row_count == 6, what="the new run")


@pilot_test
async def test_run_view_plots_every_stage_and_survives_malformed_lines(fixture_runs):
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.widgets.curves import CurvePlot

    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(fixture_runs / "demo-no-cutmix")  # malformed lines + a partial last line
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: screen.summary and screen.curves.points, what="the first poll")
        assert screen.stage == "finetune_28"  # the stage it stopped in
        loss = screen.query_one("#plot-loss", CurvePlot)
        acc = screen.query_one("#plot-test_acc", CurvePlot)
        assert loss.point_count == 4 and acc.point_count == 1  # 1 of 3 epochs done, 4 logged steps
        await pilot.press("left_square_bracket")
        assert screen.stage == "pretrain" and not screen.follow
        assert loss.point_count == 16 and acc.point_count == 2  # the kNN monitor at epochs 2 and 4
        assert acc.border_title.startswith("kNN accuracy") and "knn_every" in acc.empty_text
        await pilot.press("e")
        assert screen.x_axis == "epoch" and loss.lines[0].xs.max() == pytest.approx(4.0)
        await pilot.press("s")
        assert screen.smoothing == 0.6 and len(loss.lines) == 2  # raw (grey) + smoothed
        await pilot.press("2")
        assert screen.query_one("#run-tabs").active == "log"
        assert screen.query_one("#run-log").line_count == 30
        await pilot.press("3")
        assert "backbone" in screen.recipe_text and screen.query_one("#run-tabs").active == "recipe"
        await pilot.press("k")  # not running: refused with a message, nothing signalled
        assert isinstance(app.screen, RunScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


@pilot_test
async def test_a_poll_without_new_points_for_the_shown_stage_redraws_nothing(fixture_runs):
    from idmm_tui.tui.builder import CANVAS_JOBS
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.widgets.curves import CurvePlot

    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        run = fixture_runs / "demo-no-cutmix"  # stopped in finetune_28, which is shown
        app.open_run(run)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await pilot.pause()
        plots = list(screen.query(CurvePlot))
        assert len(plots) == 4
        await wait_for(pilot, lambda: all(p.builds for p in plots), what="the first pictures")
        await pilot.pause(0.3)
        given = [p._version for p in plots]  # set_lines calls
        builds, jobs, polls = [p.builds for p in plots], CANVAS_JOBS.done, screen.polls
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps(summary) + "\n")  # a poll with a summary, no metrics
        with open(run / "metrics.jsonl", "a") as handle:  # ends the partial last line, adds a pretraining line
            handle.write('\n{"kind":"train","stage":"pretrain","stage_index":0,"epoch":4,"step":33,"loss":0.5}\n')
        pretrain = screen.curves.stages["pretrain"]
        await wait_for(pilot, lambda: pretrain.last_train_step() == 33 and screen.polls > polls, what="the polls")
        await pilot.pause(0.3)
        assert screen.stage == "finetune_28"
        assert [p._version for p in plots] == given  # the plots were not even given their lines again
        assert [p.builds for p in plots] == builds and CANVAS_JOBS.done == jobs  # nothing drawn, nothing painted
        await pilot.press("left_square_bracket")  # the pretraining stage is drawn when shown
        await wait_for(pilot, lambda: plots[0].builds > builds[0], what="the pretraining's picture")
        assert plots[0].point_count == 17


@pilot_test
async def test_a_long_run_shows_its_end_first_then_fills_in(fixture_runs):
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.tailer import TAIL_FIRST
    from idmm_tui.tui.widgets.curves import CurvePlot

    run = make_run(fixture_runs, "long", status="interrupted", pre_epochs=2, ft_epochs=1)
    lines = [
        json.dumps(
            {
                "kind": "train",
                "stage": "finetune_28",
                "stage_index": 1,
                "epoch": 1,
                "step": i,
                "loss": 2 + math.sin(i / 500),
                "lr": 1e-3,
                "images_per_s": 900.0,
                "time": i / 10,
            }
        )
        for i in range(1, 20_001)
    ]
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    assert len(lines[0]) * len(lines) > 10 * TAIL_FIRST
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await wait_for(pilot, lambda: screen.polls, what="the first poll")
        first = screen.curves.points
        assert 0 < first < 2_000 and screen.curves.stages["finetune_28"].last_train_step() == 20_000
        await wait_for(pilot, lambda: screen.curves.points == 20_000, what="the older points")
        loss = screen.query_one("#plot-loss", CurvePlot)
        await wait_for(pilot, lambda: loss.point_count == 20_000 and loss.last_points, what="the whole curve")
        assert loss.lines[0].xs.tolist() == list(range(1, 20_001))


@pilot_test
async def test_a_run_view_shows_its_first_poll_in_its_first_layout_and_backfills_after_painting(
    fixture_runs, monkeypatch
):
    from idmm_tui.tui.screens import watching
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.widgets.curves import CurvePlot

    class Recorded(RunScreen):  # records what the screen had when its plots were given lines and painted
        at_apply: list | None = None
        at_paint: tuple | None = None

        def apply_polls(self, polls):
            if self.at_apply is None:
                self.at_apply = [plot.size.width for plot in self.query(CurvePlot)]
            super().apply_polls(polls)

        def on_curve_plot_painted(self, message):
            if self.at_paint is None:
                self.at_paint = (self.polls, self.curves.points)

    run = make_run(fixture_runs, "long", status="interrupted", pre_epochs=2, ft_epochs=1)
    record = {"kind": "train", "stage": "finetune_28", "stage_index": 1, "epoch": 1, "lr": 1e-3}
    with open(run / "metrics.jsonl", "w") as handle:
        for i in range(1, 20_001):
            handle.write(json.dumps({**record, "step": i, "loss": 2 + math.sin(i / 500)}) + "\n")
    monkeypatch.setattr(watching, "BACKFILL_DELAY", 60.0)  # (a slow machine's first paint must not time it out)
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = Recorded(run)
        screen._first.result(timeout=30)  # the first poll is read as soon as the screen exists
        app.push_screen(screen)
        await wait_for(pilot, lambda: screen.at_paint is not None, what="the first picture")
        assert screen.at_apply == [0, 0, 0, 0]  # given at mount, before the first layout (no message, no 2nd layout)
        polls, points = screen.at_paint
        assert polls == 1 and 0 < points < 2_000  # the run's end painted before any older record is read
        await wait_for(pilot, lambda: screen.curves.points == 20_000, what="the older points")


@pilot_test
async def test_runs_table_updates_changed_rows_in_place(fixture_runs):
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        table = screen.table
        await wait_for(pilot, lambda: table.row_count == 5, what="rows")
        await pilot.pause(0.2)
        rows = dict(table.rows)
        rendered = []
        render_cell = table._render_cell
        table._render_cell = lambda *args, **kwargs: rendered.append(args[:2]) or render_cell(*args, **kwargs)
        summary_path = fixture_runs / "demo-idmm" / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary["test_acc"] = 99.5
        summary_path.write_text(json.dumps(summary))
        await wait_for(
            pilot, lambda: "99.50" in str(table.get_cell(str(summary_path.parent), "test_acc")), what="the new accuracy"
        )
        await pilot.pause(0.2)
        assert dict(table.rows) == rows and all(table.rows[k] is rows[k] for k in rows)  # edited, not rebuilt
        changed_row = [r.name for r in screen.visible_rows()].index("demo-idmm")
        assert {row for row, _ in rendered} == {changed_row}  # only its row was rendered again, not all 5
        del table._render_cell
        order = [r.name for r in screen.visible_rows()]
        await pilot.press("O")  # reverse the sort: the same rows, reordered
        assert [r.name for r in screen.visible_rows()] == order[::-1]
        assert all(table.rows[k] is rows[k] for k in rows)
        assert [str(table.get_row_at(i)[2]) for i in range(5)] == order[::-1]
        assert screen.current_path() is not None


@pilot_test
async def test_compare_overlays_runs_with_stable_colours_and_diffs_recipes(fixture_runs):
    from idmm_tui.tui.screens.compare import CompareScreen
    from idmm_tui.tui.widgets.curves import CurvePlot

    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.table.row_count == 5, what="rows")
        await pilot.press("c")  # nothing marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "space", "space")  # marks demo-random-init and demo-idmm
        assert [p.name for p in screen.marked] == ["demo-random-init", "demo-idmm"]
        await pilot.press("c")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await wait_for(pilot, lambda: all(r.summary and r.recipe for r in compare.runs.values()), what="polls")
        assert compare.stage == "finetune_28"
        left = compare.query_one("#plot-left", CurvePlot)
        right = compare.query_one("#plot-right", CurvePlot)
        assert [line.label for line in left.lines] == ["demo-random-init", "demo-idmm"]
        assert [line.color for line in left.lines] == list(assign_colors(["demo-random-init", "demo-idmm"]).values())
        assert len({line.color for line in left.lines}) == 2
        assert right.border_title.startswith("test accuracy")
        diff = compare.query_one("#diff-table")
        keys = [str(diff.get_row_at(i)[0]) for i in range(diff.row_count)]
        assert keys == ["pretrain.method"]
        final = compare.query_one("#final-table")
        assert final.row_count == 2
        await pilot.press("left_square_bracket")  # pretrain: the random-init run has none
        assert compare.stage == "pretrain" and [line.label for line in left.lines] == ["demo-idmm"]
        assert right.border_title.startswith("kNN accuracy")  # the pretraining monitor
        await pilot.press("m")
        assert compare.metric == "lr"
        await pilot.press("escape", "escape")  # back; Esc again clears the marks
        assert screen.marked == []


@pilot_test
async def test_odd_data_is_shown_not_fatal(fixture_runs):
    """Wrong types everywhere in summary.json and metrics.jsonl: every screen still opens."""
    from idmm_tui.tui.screens.compare import CompareScreen
    from idmm_tui.tui.screens.run import RunScreen

    odd = fixture_runs / "odd"
    odd.mkdir()
    (odd / "summary.json").write_text(
        json.dumps(
            {
                "format": "idmm-run/1",
                "name": 7,
                "status": "running",
                "pid": "x",
                "plan": "oops",
                "stages": [1],
                "current": {"stage": ["a"], "epoch": "two", "total_steps": None},
                "wall_time_s": "long",
                "test_acc": "NaN",
                "started_at": 12,
            }
        )
    )
    (odd / "recipe.toml").write_text("this is [not toml")
    (odd / "metrics.jsonl").write_text(
        '{"stage": "s", "step": 1, "loss": 1e999}\n{"stage": "s", "step": "2", "loss": [1]}\n'
        '{"stage": 5}\n{"stage": "s", "kind": "epoch", "epoch": null, "test_acc": "high"}\n'
        '{"stage": "s", "step": 3, "loss": 0.5, "lr": true}\n' + "\x00\xff garbage\n"
    )
    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.table.row_count == 6, what="6 rows")
        app.open_run(odd)
        await pilot.pause()
        view = app.screen
        assert isinstance(view, RunScreen)
        await wait_for(pilot, lambda: view.polls > 0 and view.summary, what="a poll")
        assert view.stage == "s" and view.curves.stages["s"].xy("loss")[1].tolist() == [0.5]
        for key in ("right_square_bracket", "e", "s", "2", "3", "1"):
            await pilot.press(key)
        await pilot.press("escape")
        app.open_compare([odd, fixture_runs / "demo-idmm"])
        await pilot.pause()
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await wait_for(pilot, lambda: compare.polls >= 2, what="polls")
        for key in ("left_square_bracket", "m", "e", "s", "2"):
            await pilot.press(key)
        assert isinstance(app.screen, CompareScreen)


@pilot_test
async def test_help_lists_the_keys_of_every_screen(fixture_runs):
    from idmm_tui.tui.screens.modals import HelpScreen

    app = make_app(fixture_runs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        titles = [title for title, _ in app.screen.sections]
        assert titles[:5] == ["Everywhere", "Runs table", "Run view", "Compare", "Launch"]
        keys = {keys for _, rows in app.screen.sections for keys, _ in rows}
        assert {"question_mark", "slash", "space", "c", "k", "r", "e", "s", "ctrl+s"} <= keys
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pilot_test
async def test_system_pane_shows_psutil_and_nvml_samples(fixture_runs):
    """The pane fills from the sampler worker (real psutil; NVML's GPUs or "no GPU"); `y` hides it."""
    from idmm_tui.tui.widgets.system import SystemPane

    app = make_app(fixture_runs, show_system=True, system_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.screen.query_one(SystemPane)
        await wait_for(pilot, lambda: app.system_stats is not None, what="a system sample")
        stats = app.system_stats
        assert stats.cpus > 0 and stats.mem_total_gib > 0 and 0 <= stats.cpu_pct <= 100
        await pilot.pause()
        shown = str(pane.render())
        assert shown.startswith("CPU ") and f"of {stats.cpus}" in shown and "GiB" in shown
        assert ("no GPU" in shown) == (stats.gpus == ())
        await pilot.press("y")
        assert not app.show_system and pane.has_class("hidden")


def docs_example(section: str) -> str:
    """The first ``python`` code block under ``section`` (a ``## `` heading) of docs/extending.md."""
    doc = (Path(__file__).parents[2] / "docs" / "extending.md").read_text(encoding="utf-8")
    body = doc.split(f"\n{section}\n", 1)[1].split("\n## ", 1)[0]
    return body.split("```python\n", 1)[1].split("\n```", 1)[0]


@pilot_test
async def test_extending_a_dashboard_screen(fixture_runs):
    """docs/extending.md's example screen, as written there: palette entry, help section, OpenRun."""
    import types

    from textual.command import CommandPalette
    from textual.widgets import Input

    from idmm_tui.tui.screens.base import unregister_screen
    from idmm_tui.tui.screens.modals import HelpScreen
    from idmm_tui.tui.screens.run import RunScreen

    module = types.ModuleType("docs_example_goto")
    exec(compile(docs_example("## A dashboard screen"), "docs/extending.md", "exec"), module.__dict__)
    screen_class = module.GoToScreen
    try:
        app = make_app(fixture_runs)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("question_mark")  # the key reference, from the runs table
            assert isinstance(app.screen, HelpScreen)
            assert ("Go to a run", [("escape", "back without opening a run")]) in app.screen.sections
            await pilot.press("escape")
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), what="the command palette")
            await pilot.press(*"Go to a run")
            palette = app.screen
            await wait_for(pilot, lambda: palette.query("CommandList").first().option_count, what="matches")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, screen_class), what="the example screen")
            goto = app.screen
            assert isinstance(app.focused, Input)
            await pilot.press(*"demo-idmm", "enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="the run view")
            assert app.screen.path == fixture_runs / "demo-idmm" and goto not in app.screen_stack
    finally:
        unregister_screen(screen_class)


# ---------------------------------------------------------------------------------------------
# launch a tiny run from the form, watch its curve grow, stop it, resume it, stop it again

LIVE_RECIPE = """
name = "tiny"
seed = 3
device = "cpu"
log_every = 1
checkpoint_every_s = 0
[data]
dataset = "imagefolder"
root = "{root}"
num_workers = 0
[model]
backbone = "vit_micro_p4"
[pretrain]
method = "idmm"
epochs = 400
resolution = 16
batch_size = 8
warmup_epochs = 1
local_crops = 1
[[finetune]]
epochs = 2
resolution = 16
batch_size = 8
warmup_epochs = 0
"""


@pytest.mark.slow
@pilot_test
async def test_launch_watch_stop_and_resume_a_tiny_run(tmp_path, monkeypatch, tiny_images):
    from textual.widgets import Button, Input

    from idmm_tui.tui.screens.launch import LaunchScreen
    from idmm_tui.tui.screens.run import RunScreen

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny.toml").write_text(LIVE_RECIPE.format(root=tiny_images))
    app = make_app(Path("runs"), tail_interval=0.1)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        form = app.screen
        assert isinstance(form, LaunchScreen)
        launch = form.query_one("#launch", Button)
        await wait_for(pilot, lambda: form.result is not None and form.result.token == form.token, 60, "the check")
        assert form.result.ok, form.result.message
        assert form.defaults["pretrain_epochs"] == 400 and not launch.disabled
        # inline validation: a bad value names the key and disables Launch; no process starts
        form.query_one("#extra", Input).focus()
        await pilot.press(*"pretrain.epochz=3")
        await wait_for(pilot, lambda: form.result.token == form.token, 30, "the second check")
        assert not form.result.ok and "epochz" in form.result.message and launch.disabled
        assert form.query_one("#row-extra").has_class("-invalid")
        await pilot.press("ctrl+s")
        assert app.screen is form and not app.processes
        form.query_one("#extra", Input).value = ""
        form.query_one("#name", Input).value = "live"
        form.query_one("#finetune_epochs", Input).value = "0"  # pretraining only: it lives until stopped
        await pilot.pause()
        await wait_for(pilot, lambda: form.result.token == form.token and form.result.ok, 30, "a valid form")
        assert form.result.overrides == ["finetune.0.epochs=0"]
        await pilot.press("ctrl+s")
        view = app.screen
        assert isinstance(view, RunScreen) and view.path == Path("runs/live")
        # the curve grows while the background process trains
        await wait_for(pilot, lambda: view.curves.points >= 2, 60, "first metrics")
        first = view.curves.points
        await wait_for(pilot, lambda: view.curves.points >= first + 3, 30, "more metrics")
        from idmm_tui.tui.widgets.curves import CurvePlot

        assert view.query_one("#plot-loss", CurvePlot).point_count > 0
        assert view.summary.get("status") == "running"
        await pilot.press("k")
        await pilot.press("y")  # confirm: SIGTERM, the trainer checkpoints and marks it interrupted
        await wait_for(pilot, lambda: view.summary.get("status") == "interrupted", 60, "interrupted")
        await wait_for(pilot, lambda: not app.processes, 30, "the process to exit")
        before = view.curves.points
        await pilot.press("r")  # resume from the view
        await wait_for(
            pilot, lambda: view.summary.get("status") == "running" and view.summary.get("pid"), 60, "resumed"
        )
        await wait_for(pilot, lambda: view.curves.points > before, 60, "metrics after the resume")
        pid = view.summary["pid"]
        await pilot.press("k", "y")
        await wait_for(pilot, lambda: view.summary.get("status") == "interrupted", 60, "interrupted again")
        await wait_for(pilot, lambda: not app.processes, 30, "the process to exit")
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.slow
@pilot_test
async def test_stop_and_resume_a_two_process_run(tmp_path, monkeypatch, tiny_images):
    """A DDP run started with torchrun elsewhere: stop reaches every rank, resume relaunches it with the
    launcher and world size the run recorded (one process would refuse its per-rank RNG states)."""
    import subprocess
    import sys

    from idmm_tui.tui.screens.run import RunScreen

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(LIVE_RECIPE.format(root=tiny_images))
    runs = tmp_path / "runs"
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    args = ["-m", "idmm_tui", "run", str(recipe), "--runs-dir", str(runs), "--name", "ddp"]
    args += ["--set", "finetune.0.epochs=0"]  # pretraining only: it lives until stopped
    started = subprocess.Popen(
        [torchrun, "--standalone", "--nproc_per_node", "2", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    app = make_app(runs, tail_interval=0.1)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            app.open_run(runs / "ddp")
            view = app.screen
            assert isinstance(view, RunScreen)
            await wait_for(pilot, lambda: view.curves.points >= 2, 120, "first metrics")
            assert view.summary["world_size"] == 2 and view.summary["launch"]["launcher"] == "torchrun"
            assert "2 processes" in view.query_one("#run-header").text.plain
            first_ranks = [r["pid"] for r in view.summary["launch"]["ranks"]]
            await pilot.press("k", "y")  # SIGTERM to both ranks: checkpoint, exit 130
            await wait_for(pilot, lambda: view.summary.get("status") == "interrupted", 60, "interrupted")
            await wait_for(pilot, lambda: started.poll() is not None, 60, "torchrun to exit")
            before = view.curves.points
            await pilot.press("r")  # torchrun --standalone --nproc_per_node 2 … run --resume, as recorded
            await wait_for(
                pilot,
                lambda: view.summary.get("status") == "running" and view.summary.get("pid") not in first_ranks,
                90,
                "resumed",
            )
            await wait_for(pilot, lambda: view.curves.points > before, 60, "metrics after the resume")
            assert view.summary["world_size"] == 2 and len(view.summary["launch"]["ranks"]) == 2
            assert "resumed at" in (runs / "ddp" / "run.log").read_text()
            await pilot.press("k", "y")
            await wait_for(pilot, lambda: view.summary.get("status") == "interrupted", 60, "interrupted again")
            await wait_for(pilot, lambda: not app.processes, 60, "the resumed torchrun to exit")
            errors = [n for n in app._notifications if n.title == "Run ended with an error"]
            assert not errors, [n.message for n in errors]  # torchrun's exit 1 after a graceful stop is no error
    finally:
        if started.poll() is None:
            started.kill()


@pilot_test
async def test_cluster_jobs_show_in_the_table_and_the_run_view(fixture_runs):
    """Cells of a sweep on a cluster: a job column, queued cells before their run exists, the job in the view."""
    from idmm_tui.tui.screens.run import RunScreen

    (fixture_runs / "sweeps").mkdir()
    jobs = {
        "demo-idmm": {"executor": "slurm", "job_id": "4242_0", "state": "RUNNING", "stdout": "x/4242_0_0_log.out"},
        "demo.queued": {"executor": "slurm", "job_id": "4242_1", "state": "PENDING"},
        "demo.gone": {"executor": "slurm", "job_id": "4242_2", "state": "CANCELLED"},
    }
    manifest = {"format": "idmm-sweep/1", "name": "demo", "recipe": "r.toml", "cells": [], "jobs": jobs}
    (fixture_runs / "sweeps" / "demo.json").write_text(json.dumps(manifest))
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.table.row_count == 6, what="5 runs and 1 queued cell")
        rows = {r.name: r for r in screen.rows}
        assert rows["demo.queued"].status == "queued" and rows["demo.queued"].job == "4242_1 PENDING"
        assert rows["demo-idmm"].job == "4242_0 RUNNING" and rows["demo-random-init"].job == ""
        assert "job" in [c.key.value for c in screen.table.columns.values()]
        await pilot.press("slash", *"PENDING", "enter")
        assert [r.name for r in screen.visible_rows()] == ["demo.queued"]
        app.open_run(fixture_runs / "demo-idmm")
        view = app.screen
        assert isinstance(view, RunScreen)
        await wait_for(pilot, lambda: view.summary and view.job, what="the run and its job")
        assert "slurm job 4242_0 RUNNING" in view.query_one("#run-header").text.plain
        jobs["demo-idmm"]["state"] = "COMPLETED"  # the sweep saw the job end
        (fixture_runs / "sweeps" / "demo.json").write_text(json.dumps(manifest))
        await wait_for(pilot, lambda: view.job.get("state") == "COMPLETED", what="the new job state")


# ---------------------------------------------------------------------------------------------
# the zoo screen (the zoo's own functions, in a worker)

CATALOGUE = """
[models.vit-demo]
repo = "idmm-zoo/vit-demo"
status = "not-published"
backbone = "vit_micro_p4"
method = "idmm"
dataset = "embedded"
stage = "pretrain"
kind = "backbone"
resolution = 16
"""


@pilot_test
async def test_zoo_lists_the_catalogue_and_reports_errors_clearly(fixture_runs, tmp_path, monkeypatch):
    from textual.widgets import RichLog

    from idmm_tui.tui.screens.zoo import PushScreen, ZooScreen

    (tmp_path / "catalogue.toml").write_text(CATALOGUE)
    monkeypatch.setenv("IDMM_ZOO_CATALOGUE", str(tmp_path / "catalogue.toml"))
    monkeypatch.setenv("IDMM_ZOO_DIR", str(tmp_path / "zoo"))
    app = make_app(fixture_runs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("z")
        zoo = app.screen
        assert isinstance(zoo, ZooScreen)
        await wait_for(pilot, lambda: zoo.loaded, 30, "the zoo list")
        assert [row["name"] for row in zoo.rows] == ["vit-demo"]
        log = zoo.query_one("#zoo-log", RichLog)
        await pilot.press("p")  # not on the Hub: the zoo's own one-line reason, no crash
        await wait_for(pilot, lambda: not zoo.busy, 30, "the pull to fail")
        assert any("not-published" in str(line.text) for line in log.lines)
        await pilot.press("u")  # push a run: only runs with a finished stage are offered
        push = app.screen
        assert isinstance(push, PushScreen)
        assert sorted(p.name for p in push.runs) == [
            "demo-idmm",
            "demo-no-cutmix",
            "demo-random-init",
            "flowers-deit",
            "pets-killed",
        ]
        await pilot.press("ctrl+s")  # the fixture runs have no weights: a clear error, nothing installed
        await wait_for(pilot, lambda: app.screen is zoo and not zoo.busy, 30, "the push to fail")
        assert any("push failed" in str(line.text) for line in log.lines)
        assert not (tmp_path / "zoo").exists() or not any(
            p.is_dir() and not p.name.startswith(".") for p in (tmp_path / "zoo").iterdir()
        )
