"""Redraw time of the dashboard's curve plot for 1k / 10k / 100k-point series, downsampled vs not.

Mounts the real widget (``CurvePlot``, textual-plotext) in a headless Textual app of the given size,
as one of the run view's four plots (a quarter of the screen), gives it a noisy loss curve of N
points and times its redraw (plotext build + conversion to a Textual renderable, measured inside
the widget; wall and CPU time of the UI thread, which differ when other processes share the CPU),
median of ``--repeat`` redraws. "downsampled" is what the dashboard does (min/max per
bucket, about two points per column); "raw" hands every point to plotext.

Then the whole run view on a run directory of N train lines (``--run-view``, default 100k): the
time until all its curves are drawn, and the UI-thread time of one live update (50 new lines
arrive: the poll handler plus the redraw of the four plots).

    python scripts/bench_tui_plot.py                    # 120x40 terminal, 1k/10k/100k points
    python scripts/bench_tui_plot.py --size 80x24 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from textual.app import App, ComposeResult
from textual.containers import Grid

from idmm_tui.tui.downsample import downsample
from idmm_tui.tui.widgets.curves import CurvePlot, Line, points_for_width


class Bench(App):
    CSS = "Grid { grid-size: 2 2; } CurvePlot { border: round $primary; }"

    def compose(self) -> ComposeResult:
        with Grid():
            for _ in range(4):
                yield CurvePlot()


def series(n: int) -> Line:
    rng = np.random.default_rng(0)
    steps = np.arange(1, n + 1, dtype=float)
    loss = 5.0 * np.exp(-steps / (n / 3)) + 0.3 * rng.standard_normal(n) ** 2
    return Line("loss", steps, loss, (78, 121, 167))


async def measure(size: tuple[int, int], counts: list[int], repeat: int):
    app = Bench()
    rows = []
    async with app.run_test(size=size) as pilot:
        plot = app.query(CurvePlot).first()
        await pilot.pause()
        for n in counts:
            line = series(n)
            for mode in ("downsampled", "raw"):
                plot.decimate = mode == "downsampled"
                times, cpu = [], []
                for _ in range(repeat):
                    plot.set_lines([line])
                    start = time.thread_time()
                    plot.render()  # the redraw the compositor would ask for (cache invalidated by set_lines)
                    cpu.append(time.thread_time() - start)
                    times.append(plot.last_build_s)
                rows.append((n, mode, statistics.median(times), statistics.median(cpu), plot.last_points))
        width = plot.size.width
    return rows, width


def write_run(root: Path, n: int) -> Path:
    """A finished-looking one-stage run directory with ``n`` train lines."""
    run = root / "big"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    loss = 5.0 * np.exp(-np.arange(n) / (n / 3)) + 0.3 * rng.standard_normal(n) ** 2
    with open(run / "metrics.jsonl", "w") as handle:
        for i in range(n):
            handle.write(
                json.dumps(
                    {
                        "kind": "train",
                        "stage": "finetune_224",
                        "stage_index": 0,
                        "epoch": i // 100 + 1,
                        "step": i + 1,
                        "loss": round(float(loss[i]), 6),
                        "lr": 1e-3,
                        "images_per_s": 900.0 + i % 7,
                        "time": i * 0.1,
                    }
                )
                + "\n"
            )
    summary = {
        "format": "idmm-run/1",
        "name": "big",
        "status": "running",
        "started_at": "2026-11-26T12:00:00+0000",
        "plan": [{"name": "finetune_224", "kind": "finetune", "epochs": n // 100, "resolution": 224}],
        "current": {
            "stage": "finetune_224",
            "stage_index": 0,
            "epoch": n // 100,
            "epochs": n // 100,
            "step": n,
            "total_steps": n + 1000,
        },
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "recipe.toml").write_text("seed = 0\n")
    return run


async def measure_run_view(size: tuple[int, int], n: int):
    from idmm_tui.tui.app import IdmmApp
    from idmm_tui.tui.screens.run import RunScreen
    from idmm_tui.tui.widgets.curves import CurvePlot

    handler_s: list[float] = []
    original = RunScreen.on_run_polled

    def timed(self, message):
        start = time.perf_counter()
        original(self, message)
        handler_s.append(time.perf_counter() - start)

    RunScreen.on_run_polled = timed
    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp), n)
        app = IdmmApp(Path(tmp), show_system=False, tail_interval=0.05)
        async with app.run_test(size=size) as pilot:
            start = time.perf_counter()
            app.open_run(run)
            await pilot.pause()
            screen = app.screen
            plots = list(screen.query(CurvePlot))
            assert len(plots) == 4
            while screen.curves.points < n or any(p.builds == 0 for p in plots if p.point_count):
                await pilot.pause(0.01)
            first = time.perf_counter() - start
            drawn = [p for p in plots if p.point_count]
            builds = [p.builds for p in drawn]
            handler_s.clear()
            with open(run / "metrics.jsonl", "a") as handle:
                for i in range(n, n + 50):
                    handle.write(
                        json.dumps(
                            {
                                "kind": "train",
                                "stage": "finetune_224",
                                "stage_index": 0,
                                "epoch": i // 100 + 1,
                                "step": i + 1,
                                "loss": 0.5,
                                "lr": 1e-3,
                                "images_per_s": 900.0,
                                "time": i * 0.1,
                            }
                        )
                        + "\n"
                    )
            while screen.curves.points < n + 50 or any(p.builds == b for p, b in zip(drawn, builds, strict=True)):
                await pilot.pause(0.01)
            redraw = sum(p.last_build_s for p in drawn), sum(p.last_build_cpu_s for p in drawn)
    RunScreen.on_run_polled = original
    return first, sum(handler_s), redraw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="120x40", help="terminal size COLSxROWS (default 120x40)")
    parser.add_argument("--points", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run-view", type=int, default=100_000, help="train lines of the run-view test (0: skip)")
    args = parser.parse_args()
    cols, rows_ = (int(v) for v in args.size.lower().split("x"))
    counts = [int(v) for v in args.points.split(",")]
    results, width = asyncio.run(measure((cols, rows_), counts, args.repeat))
    print(f"terminal {cols}x{rows_}: plot widget {width} columns wide, target {points_for_width(width - 8)} points")
    print(f"{'points':>8}  {'mode':<12} {'wall ms':>9} {'CPU ms':>8}  {'points drawn':>12}")
    for n, mode, wall, cpu, drawn in results:
        print(f"{n:>8}  {mode:<12} {wall * 1000:>9.1f} {cpu * 1000:>8.1f}  {drawn:>12}")
    line = series(max(counts))
    start = time.perf_counter()
    for _ in range(args.repeat):
        downsample(line.xs, line.ys, points_for_width(width - 8))
    print(f"downsample() alone on {max(counts)} points: {(time.perf_counter() - start) / args.repeat * 1000:.1f} ms")
    if args.run_view:
        first, handler, redraw = asyncio.run(measure_run_view((cols, rows_), args.run_view))
        print(
            f"run view of a {args.run_view}-line run: all curves drawn {first * 1000:.0f} ms after opening; "
            f"a live update of 50 lines: poll handler {handler * 1000:.1f} ms + 3 plot redraws "
            f"{redraw[0] * 1000:.1f} ms wall / {redraw[1] * 1000:.1f} ms CPU on the UI thread"
        )


if __name__ == "__main__":
    main()
