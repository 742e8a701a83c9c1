"""How much of the dashboard's UI thread its plots and tables take, and how fast a long run opens.

Every figure is measured on the real app (headless ``App.run_test`` at ``--size``), ``--repeat``
times; each line prints the median and the range. UI-thread time is measured at the event loop:
the wall and CPU time (``time.thread_time``) of every callback the UI thread's asyncio loop runs
(all of Textual's work: message handlers, layout, rendering, compositing), minus what the same
screen costs over an idle window of the same length. CPU time is the figure to read on a shared
machine; wall time also counts waiting for the CPU (and for the GIL).

Sections (``--only``, comma-separated; all by default):

* ``plot``: one quarter-screen ``CurvePlot`` redrawn with 1k / 10k / 100k points, downsampled (what
  the dashboard does) or every point handed to plotext.
* ``split``: where the drawing pays: three plots drawn on the UI loop, in one drawing thread (what the
  dashboard does, with Python's default GIL switch interval and with the dashboard's), or with
  plotext in a subprocess; the loop thread's CPU time and how late a 1 ms timer on the loop fires
  meanwhile (what a keypress would wait).
* ``open``: opening the run view of a run of 100,000 and 1,000,000 train lines (``--open``): time
  until the first curve is drawn (its picture handed to the plot, as seen by the Pilot that polls
  for it), until it is painted (a plot first gives the compositor a line of its picture, stamped
  where it happens), and until every point is loaded and drawn.
* ``live``: one live update of the run view of a 100,000-line run: 50 new lines arrive.
* ``compare``: the same with 8 runs of 100,000 lines overlaid (``--compare-runs``), 50 new lines each.
* ``table``: a runs directory of 500 runs (``--table-runs``), 10 of them running (their summaries
  rewritten every second): the UI-thread time of one poll of the runs table, of one filter keystroke
  and of one sort.

    python scripts/bench_tui_plot.py                     # 120x40 terminal, everything, 3 repeats
    python scripts/bench_tui_plot.py --only live,compare --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from textual.app import App, ComposeResult
from textual.containers import Grid
from textual.screen import Screen

from idmm_tui.tui.downsample import downsample
from idmm_tui.tui.widgets.curves import CurvePlot

STAGE = "finetune_224"


# ---------------------------------------------------------------------------------------------
# measuring the UI thread


class LoopMeter:
    """Wall and CPU time the UI thread spends in event-loop callbacks (patched ``Handle._run``)."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.longest = 0.0
        self._thread = threading.get_ident()
        self._original = asyncio.events.Handle._run

    def __enter__(self) -> LoopMeter:
        original, meter = self._original, self

        def _run(handle: asyncio.events.Handle) -> None:
            if threading.get_ident() != meter._thread:
                return original(handle)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(handle)
            finally:
                took = time.perf_counter() - wall
                meter.wall += took
                meter.cpu += time.thread_time() - cpu
                meter.longest = max(meter.longest, took)

        asyncio.events.Handle._run = _run
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original

    def reset(self) -> None:
        self.wall = self.cpu = self.longest = 0.0

    def read(self) -> tuple[float, float, float]:
        return self.wall, self.cpu, self.longest


async def wait_until(pilot, condition: Callable[[], bool], timeout: float = 120.0, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        await pilot.pause(step)


async def ui_cost(
    pilot, meter: LoopMeter, act: Callable[[], None], done: Callable[[], bool], quiet: float = 0.6
) -> tuple[float, float, float]:
    """UI-thread (wall, CPU, longest callback) of ``act`` until ``done`` and ``quiet`` s more, net of idle.

    The idle window waits the same way for the same time (the waiting itself costs the loop a little).
    """
    await pilot.pause(quiet)
    meter.reset()
    start = time.perf_counter()
    act()
    await wait_until(pilot, done)
    waited = time.perf_counter() - start
    await pilot.pause(quiet)
    wall, cpu, longest = meter.read()
    meter.reset()
    deadline = time.perf_counter() + waited
    await wait_until(pilot, lambda: time.perf_counter() >= deadline)
    await pilot.pause(quiet)
    idle_wall, idle_cpu, _ = meter.read()
    return max(wall - idle_wall, 0.0), max(cpu - idle_cpu, 0.0), longest


def stats(values: list[float], scale: float = 1000.0) -> str:
    """``median (min–max)`` in ms."""
    values = [v * scale for v in values]
    return f"{statistics.median(values):7.1f} ({min(values):.1f}–{max(values):.1f})"


# ---------------------------------------------------------------------------------------------
# fixture runs


def metrics_lines(start: int, count: int, seed: int = 0, total: int | None = None) -> str:
    """``count`` train lines of a noisy decaying loss, from step ``start + 1``."""
    total = total or start + count
    rng = np.random.default_rng(seed + start)
    steps = np.arange(start, start + count)
    loss = 5.0 * np.exp(-steps / (total / 3)) + 0.3 * rng.standard_normal(count) ** 2 + 0.05 * seed
    return "".join(
        f'{{"kind":"train","stage":"{STAGE}","stage_index":0,"epoch":{i // 100 + 1},"step":{i + 1},'
        f'"loss":{loss[k]:.6f},"lr":0.001,"images_per_s":{900.0 + i % 7},"time":{i * 0.1:.1f}}}\n'
        for k, i in enumerate(steps)
    )


def summary_of(
    name: str,
    n: int,
    *,
    status: str = "running",
    started: str = "2026-11-26T12:00:00+0000",
    pid: int | None = None,
    updated: str | None = None,
    method: str = "idmm",
) -> dict:
    out = {
        "format": "idmm-run/1",
        "name": name,
        "status": status,
        "started_at": started,
        "updated_at": updated or started,
        "backbone": "vit_tiny",
        "dataset": "cifar10",
        "method": method,
        "wall_time_s": n * 0.1,
        "plan": [{"name": STAGE, "kind": "finetune", "epochs": max(n // 100, 1), "resolution": 224}],
        "current": {
            "stage": STAGE,
            "stage_index": 0,
            "epoch": max(n // 100, 1),
            "epochs": max(n // 100, 1),
            "step": n,
            "total_steps": n + 1000,
            "loss": 0.5,
            "images_per_s": 900.0,
        },
    }
    if pid is not None:
        out["pid"] = pid
    return out


def write_run(root: Path, name: str, n: int, seed: int = 0) -> Path:
    """A running one-stage run directory with ``n`` train lines."""
    run = root / name
    run.mkdir(parents=True)
    with open(run / "metrics.jsonl", "w") as handle:
        for start in range(0, n, 100_000):
            handle.write(metrics_lines(start, min(100_000, n - start), seed, n))
    (run / "summary.json").write_text(json.dumps(summary_of(name, n)))
    (run / "recipe.toml").write_text(f"seed = {seed}\n")
    (run / "run.log").write_text("")
    return run


def append(run: Path, start: int, count: int = 50) -> None:
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write(metrics_lines(start, count))


def make_app(runs_dir: Path, **kwargs):
    from idmm_tui.tui.app import IdmmApp

    options = {"show_system": False, "scan_interval": 0.25, "tail_interval": 0.1, "recipes_dir": runs_dir}
    options.update(kwargs)
    return IdmmApp(runs_dir, **options)


def plots_of(screen) -> list[CurvePlot]:
    return list(screen.query(CurvePlot))


def drawn(plot: CurvePlot) -> bool:
    """The plot shows a curve."""
    return plot.builds > 0 and plot.point_count > 0


# ---------------------------------------------------------------------------------------------
# plot: one CurvePlot's redraw


class PlotBench(App):
    CSS = "Grid { grid-size: 2 2; } CurvePlot { border: round $primary; }"

    def compose(self) -> ComposeResult:
        with Grid():
            for _ in range(4):
                yield CurvePlot()


def series(n: int):
    from idmm_tui.tui.canvas import Line

    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1, dtype=float)
    loss = 5.0 * np.exp(-steps / (n / 3)) + 0.3 * rng.standard_normal(n) ** 2
    return Line("loss", steps, loss, (78, 121, 167))


async def bench_plot(size: tuple[int, int], counts: list[int], repeat: int) -> None:
    """What one drawing costs: cutting the series, plotext, its text as Rich text (no Textual involved)."""
    from textual_plotext.plot import Plot

    from idmm_tui.tui.canvas import AXIS_COLUMNS, draw, plot_points, points_for_width

    app = PlotBench()
    async with app.run_test(size=size) as pilot:
        plot = app.query(CurvePlot).first()
        await pilot.pause()
        width, height = plot.size.width, plot.size.height
        theme = plot._get_plotext_theme_name(app.theme)
    plt = Plot()
    print(
        f"\n[plot] one quarter-screen plot, {width} columns wide: target {points_for_width(width - AXIS_COLUMNS)} "
        f"points; one drawing, ms, median (range) of {repeat}"
    )
    print(f"{'points':>9}  {'mode':<12} {'wall ms':>20} {'CPU ms':>20}")
    for n in counts:
        line = series(n)
        for mode in ("downsampled", "raw"):
            walls, cpus = [], []
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.thread_time()
                points = plot_points([line], width, height, decimate=mode == "downsampled")
                draw(plt, points, width, height, theme)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.thread_time() - cpu)
            print(f"{n:>9}  {mode:<12} {stats(walls):>20} {stats(cpus):>20}")
    line = series(max(counts))
    start = time.perf_counter()
    for _ in range(repeat):
        downsample(line.xs, line.ys, points_for_width(width - AXIS_COLUMNS))
    print(f"downsample() alone on {max(counts)} points: {(time.perf_counter() - start) / repeat * 1000:.1f} ms")


# ---------------------------------------------------------------------------------------------
# split: where the drawing runs


def draw_points_in_process(points, width: int, height: int, theme: str):
    """Run in a subprocess: plotext's drawing of already cut points, as strips (pickled back)."""
    from textual_plotext.plot import Plot

    from idmm_tui.tui.canvas import draw, to_strips

    return to_strips(draw(Plot(), points, width, height, theme), width, height)


async def bench_split(repeat: int, plots: int = 3, n: int = 100_000, width: int = 58, height: int = 17) -> None:
    """One redraw of ``plots`` plots of ``n`` points: on the UI loop, in one drawing thread, or with plotext
    in a subprocess. Meanwhile a task ticking every millisecond on the loop measures how late it wakes up
    (what a keypress would wait), and the loop thread's CPU time is counted."""
    import concurrent.futures
    import multiprocessing

    from textual_plotext.plot import Plot

    from idmm_tui.tui.canvas import Line, draw, plot_points, to_strips

    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1, dtype=float)
    lines = [
        Line("loss", steps, 3 * np.exp(-steps / n) + rng.random(n) * (k + 1), (78, 121, 167)) for k in range(plots)
    ]
    theme = "dark"
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(draw_points_in_process, plot_points(lines[:1], width, height, live=True), width, height, theme).result()
    loop = asyncio.get_running_loop()
    plts = [Plot() for _ in lines]

    def whole(k: int):
        return to_strips(
            draw(plts[k], plot_points([lines[k]], width, height, live=True), width, height, theme), width, height
        )

    def in_process(k: int):
        points = plot_points([lines[k]], width, height, live=True)
        return pool.submit(draw_points_in_process, points, width, height, theme).result()

    async def run(mode: str) -> tuple[float, float, float]:
        lags: list[float] = []
        stop = False

        async def ticker() -> None:
            while not stop:
                start = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - start - 0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        lags.clear()
        start, cpu = time.perf_counter(), time.thread_time()
        if mode == "UI thread":
            for k in range(len(lines)):
                whole(k)
                await asyncio.sleep(0)
        else:
            job = whole if mode == "drawing thread" else in_process
            with concurrent.futures.ThreadPoolExecutor(1) as thread:
                await asyncio.gather(*(loop.run_in_executor(thread, job, k) for k in range(len(lines))))
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu
        stop = True
        await task
        return wall, cpu, max(lags or [0.0])

    print(
        f"\n[split] one redraw of {plots} plots of {n} points ({width}x{height}), median (range) of {repeat}: "
        "loop-thread CPU, time until drawn, and how late a 1 ms timer on the loop fires (a keypress's wait)"
    )
    print(f"{'':<36} {'loop CPU ms':>20} {'drawn after ms':>20} {'worst timer lag ms':>20}")
    from idmm_tui.tui.app import SWITCH_INTERVAL

    default = sys.getswitchinterval()
    try:
        for mode, interval in (
            ("UI thread", default),
            ("drawing thread", default),
            ("drawing thread", SWITCH_INTERVAL),
            ("plotext in a subprocess", default),
        ):
            sys.setswitchinterval(interval)
            rows = [await run(mode) for _ in range(repeat)]
            wall, cpu, lag = zip(*rows, strict=True)
            label = f"{mode}, GIL switch {interval * 1000:g} ms"
            print(f"{label:<36} {stats(list(cpu)):>20} {stats(list(wall)):>20} {stats(list(lag)):>20}")
    finally:
        sys.setswitchinterval(default)
        pool.shutdown()


# ---------------------------------------------------------------------------------------------
# open: time to first curve of a long run


async def open_once(
    size: tuple[int, int], runs_dir: Path, run: Path, n: int
) -> tuple[float, float, float, float, float]:
    painted: list[float] = []  # when a plot first hands the compositor a line of its picture
    original = CurvePlot.render_line

    def render_line(plot: CurvePlot, y: int):
        if not painted and plot._strips is not None and plot.point_count:
            painted.append(time.perf_counter())
        return original(plot, y)

    CurvePlot.render_line = render_line
    try:
        return await _open_once(size, runs_dir, run, n, painted)
    finally:
        CurvePlot.render_line = original


async def _open_once(
    size: tuple[int, int], runs_dir: Path, run: Path, n: int, painted: list[float]
) -> tuple[float, float, float, float, float]:
    from idmm_tui.tui.screens.run import RunScreen

    app = make_app(runs_dir)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        with LoopMeter() as meter:
            start = time.perf_counter()
            app.open_run(run)
            await pilot.pause(0)
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await wait_until(pilot, lambda: any(drawn(p) for p in plots_of(screen)), step=0.002)
            first = time.perf_counter() - start
            await wait_until(pilot, lambda: bool(painted), step=0.002)
            first_painted = painted[0] - start
            await wait_until(
                pilot,
                lambda: screen.curves.points >= n and any(p.point_count and drawn(p) for p in plots_of(screen)),
                step=0.01,
            )
            await wait_until(pilot, lambda: all(p.builds or not p.point_count for p in plots_of(screen)))
            full = time.perf_counter() - start
            wall, cpu, longest = meter.read()
    return first, first_painted, full, cpu, longest


async def bench_open(size: tuple[int, int], sizes: list[int], repeat: int, tmp: Path) -> None:
    print(f"\n[open] the run view of a long run: ms, median (range) of {repeat}")
    print(
        f"{'lines':>9}  {'first curve':>20} {'first curve painted':>22} {'all points drawn':>22} "
        f"{'UI CPU until then':>22} {'longest stall':>20}"
    )
    for n in sizes:
        root = tmp / f"open-{n}"
        run = write_run(root, "big", n)
        rows = [await open_once(size, root, run, n) for _ in range(repeat)]
        first, painted, full, cpu, longest = zip(*rows, strict=True)
        print(
            f"{n:>9}  {stats(list(first)):>20} {stats(list(painted)):>22} {stats(list(full)):>22} "
            f"{stats(list(cpu)):>22} {stats(list(longest)):>20}"
        )


# ---------------------------------------------------------------------------------------------
# live: one live update of the run view / of compare


async def bench_live(size: tuple[int, int], n: int, repeat: int, tmp: Path, runs: int) -> None:
    from idmm_tui.tui.screens.compare import CompareScreen
    from idmm_tui.tui.screens.run import RunScreen

    root = tmp / f"live-{runs}"
    paths = [write_run(root, f"run-{k}", n, seed=k) for k in range(runs)]
    app = make_app(root)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        if runs == 1:
            app.open_run(paths[0])
        else:
            app.open_compare(paths)
        await pilot.pause(0)
        screen = app.screen
        assert isinstance(screen, (RunScreen, CompareScreen))

        def points() -> list[int]:
            if runs == 1:
                return [screen.curves.points]
            return [r.curves.points for r in screen.runs.values()]

        await wait_until(pilot, lambda: min(points()) >= n)
        await wait_until(pilot, lambda: all(p.builds or not p.point_count for p in plots_of(screen)))
        rows = []
        with LoopMeter() as meter:
            for r in range(repeat):
                start = n + 50 * r

                def act(start: int = start) -> None:
                    for path in paths:
                        append(path, start)

                rows.append(await ui_cost(pilot, meter, act, lambda s=start: min(points()) >= s + 50))
        redrawn = sum(p.builds for p in plots_of(screen))
    wall, cpu, longest = zip(*rows, strict=True)
    what = "run view" if runs == 1 else f"compare, {runs} runs"
    print(
        f"{what + f' ({n} lines each)':<36} {stats(list(wall)):>20} {stats(list(cpu)):>20} "
        f"{stats(list(longest)):>20}   ({redrawn} plot builds in all)"
    )


# ---------------------------------------------------------------------------------------------
# table: 500 runs


class Blank(Screen):
    def compose(self) -> ComposeResult:
        return iter(())


def write_runs_dir(root: Path, count: int, running: int) -> list[Path]:
    """``count`` small runs (sweeps of 20 cells), ``running`` of them running (this process's pid)."""
    out = []
    for k in range(count):
        name = f"sweep{k // 20:02d}-cell{k % 20:02d}"
        run = root / name
        run.mkdir(parents=True)
        status = "running" if k < running else ("completed", "interrupted", "failed")[k % 3]
        started = f"2026-11-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:00+0000"
        summary = summary_of(
            name,
            1000 + k,
            status=status,
            started=started,
            pid=os.getpid() if status == "running" else None,
            method=("idmm", "dino", "mocov3", "none")[k % 4],
        )
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "recipe.toml").write_text("seed = 0\n")
        if status == "running":
            out.append(run)
    return out


class SummaryWriter(threading.Thread):
    """Rewrites the running runs' summaries every second (a step further), as trainers do."""

    def __init__(self, runs: list[Path]) -> None:
        super().__init__(daemon=True)
        self.runs, self.stop = runs, threading.Event()

    def run(self) -> None:
        step = 2000
        while not self.stop.wait(1.0):
            step += 10
            for run in self.runs:
                summary = json.loads((run / "summary.json").read_text())
                summary["current"]["step"] = step
                summary["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                tmp = run / "summary.json.tmp"
                tmp.write_text(json.dumps(summary))
                os.replace(tmp, run / "summary.json")


async def bench_table(size: tuple[int, int], count: int, repeat: int, tmp: Path) -> None:
    from idmm_tui.tui.screens.runs import RunsScreen

    root = tmp / "table"
    running = write_runs_dir(root, count, 10)
    interval = 1.0
    app = make_app(root, scan_interval=interval)
    writer = SummaryWriter(running)
    polls, filters, sorts = [], [], []
    async with app.run_test(size=size) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_until(pilot, lambda: screen.table.row_count == count)
        writer.start()
        with LoopMeter() as meter:
            for _ in range(repeat):
                # idle rate: the same app with the table hidden (it does not scan then)
                app.push_screen(Blank())
                await pilot.pause(0.5)
                meter.reset()
                await pilot.pause(interval * 3)
                idle_wall, idle_cpu, _ = meter.read()
                app.pop_screen()
                await pilot.pause(interval)
                meter.reset()
                await pilot.pause(interval * 3)
                wall, cpu, longest = meter.read()
                polls.append(((wall - idle_wall) / 3, (cpu - idle_cpu) / 3, longest))
            # filter and sort alone: no scan lands in their windows
            writer.stop.set()
            app.scan_interval = 1e6
            await pilot.pause(interval * 1.5)
            table = screen.table
            for r in range(repeat):
                await pilot.press("slash")

                def typed(r: int = r) -> None:
                    box = screen.query_one("#filter")
                    box.value = "sweep1" if r % 2 == 0 else "sweep"

                names = [p.name for p in root.iterdir()]
                target = sum("sweep1" in name for name in names) if r % 2 == 0 else count
                filters.append(await ui_cost(pilot, meter, typed, lambda t=target: table.row_count == t, quiet=0.3))
                await pilot.press("escape")
                await pilot.press("escape")
                await wait_until(pilot, lambda: table.row_count == count)
            for _ in range(repeat):
                before = screen.sort_column
                sorts.append(
                    await ui_cost(pilot, meter, screen.action_sort, lambda b=before: screen.sort_column != b, quiet=0.3)
                )
            app.scan_interval = interval  # the scan worker's wait ends (the app can exit)
            screen.rescan()
    writer.stop.set()
    print(
        f"\n[table] {count} runs, 10 running (summaries rewritten every second), scan every {interval:g} s: "
        f"UI-thread ms, median (range) of {repeat}"
    )
    print(f"{'':<36} {'wall ms':>20} {'CPU ms':>20} {'longest stall ms':>20}")
    for label, rows in (("one poll", polls), ("one filter change", filters), ("one sort", sorts)):
        wall, cpu, longest = zip(*rows, strict=True)
        print(f"{label:<36} {stats(list(wall)):>20} {stats(list(cpu)):>20} {stats(list(longest)):>20}")


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="120x40", help="terminal size COLSxROWS (default 120x40)")
    parser.add_argument("--only", default="plot,split,open,live,compare,table")
    parser.add_argument("--points", default="1000,10000,100000", help="series lengths of the plot section")
    parser.add_argument("--open", default="100000,1000000", help="run lengths of the open section")
    parser.add_argument("--live", type=int, default=100_000, help="lines of each run of live / compare")
    parser.add_argument("--compare-runs", type=int, default=8)
    parser.add_argument("--table-runs", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="GIL switch interval (s) instead of the app's, to compare"
    )
    args = parser.parse_args()
    if args.switch_interval:
        from idmm_tui.tui import app as app_module

        sys.setswitchinterval(args.switch_interval)
        if hasattr(app_module, "SWITCH_INTERVAL"):
            app_module.SWITCH_INTERVAL = args.switch_interval
    cols, rows = (int(v) for v in args.size.lower().split("x"))
    size = (cols, rows)
    only = set(args.only.split(","))
    print(
        f"terminal {cols}x{rows}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "plot" in only:
            asyncio.run(bench_plot(size, [int(v) for v in args.points.split(",")], args.repeat))
        if "split" in only:
            asyncio.run(bench_split(args.repeat))
        if "open" in only:
            asyncio.run(bench_open(size, [int(v) for v in args.open.split(",")], args.repeat, tmp))
        if only & {"live", "compare"}:
            print(
                f"\n[live] one live update (50 new lines per run): UI-thread ms net of idle, median (range) of "
                f"{args.repeat}"
            )
            print(f"{'':<36} {'wall ms':>20} {'CPU ms':>20} {'longest stall ms':>20}")
            if "live" in only:
                asyncio.run(bench_live(size, args.live, args.repeat, tmp, 1))
            if "compare" in only:
                asyncio.run(bench_live(size, args.live, args.repeat, tmp, args.compare_runs))
        if "table" in only:
            asyncio.run(bench_table(size, args.table_runs, args.repeat, tmp))


if __name__ == "__main__":
    main()
