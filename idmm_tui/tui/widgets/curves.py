"""A line plot of one metric for one or several runs (textual-plotext), fast on long series.

Each series is downsampled to about two points per character column before plotext sees it
(plotext's cost grows with the points: ~165 ms for 10k), and the built plot is cached until the
data, the size or the theme changes, so other refreshes (focus, scrolling, the app's resize) cost
nothing. ``last_build_s`` records how long the last real redraw took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from rich.align import Align
from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from idmm_tui.tui.downsample import downsample


@dataclass(frozen=True)
class Line:
    """One series: its points, legend label and RGB colour (None: plotext's default)."""

    label: str
    xs: np.ndarray
    ys: np.ndarray
    color: tuple[int, int, int] | None = None


def points_for_width(width: int) -> int:
    """How many points a plot ``width`` characters wide can show: about two per column (braille)."""
    return max(2 * int(width), 16)


def draw_lines(plt: Plot, lines: list[Line], width: int, *, decimate: bool = True) -> int:
    """Put ``lines`` on plotext figure ``plt``; returns how many points were handed to plotext.

    Only the left and bottom axes are drawn (no box, no legend, no axis label: the widget's border
    carries the title, and the screens show each run's colour), so a small plot keeps its rows for data.
    """
    total = 0
    plt.xaxes(True, False)
    plt.yaxes(True, False)
    for line in lines:
        if not len(line.xs):
            continue
        if decimate:
            xs, ys = downsample(line.xs, line.ys, points_for_width(width))
        else:
            xs, ys = line.xs, line.ys
        total += len(xs)
        if len(xs) == 1:  # a single point (one test accuracy so far): draw it as a visible dot
            plt.scatter(xs.tolist(), ys.tolist(), marker="dot", color=line.color)
        else:
            plt.plot(xs.tolist(), ys.tolist(), marker="braille", color=line.color)
    return total


class CurvePlot(PlotextPlot):
    """A cached, downsampling plotext plot of :class:`Line` series."""

    DEFAULT_CSS = """
    CurvePlot {
        width: 1fr;
        height: 1fr;
        min-height: 5;
    }
    """

    #: Downsample before plotting (off only to measure what it saves: scripts/bench_tui_plot.py).
    decimate = True

    def __init__(
        self, *, empty_text: str = "waiting for metrics…", id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[Line] = []
        self._empty = empty_text
        self._version = 0
        self._cache: tuple[tuple, RenderResult] | None = None
        self.last_build_s: float | None = None  # wall time of the last real redraw
        self.last_build_cpu_s: float | None = None  # its CPU time (UI thread)
        self.last_points = 0
        self.builds = 0

    @property
    def lines(self) -> list[Line]:
        return self._lines

    @property
    def empty_text(self) -> str:
        """What the plot says while it has no points."""
        return self._empty

    @property
    def point_count(self) -> int:
        return sum(len(line.xs) for line in self._lines)

    def set_lines(self, lines: list[Line], *, empty_text: str | None = None) -> None:
        self._lines = list(lines)
        if empty_text is not None:
            self._empty = empty_text
        self._version += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self._version, self.size.width, self.size.height, self.app.theme, self.theme)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if not any(len(line.xs) for line in self._lines):
            result: RenderResult = Align.center(Text(self._empty, style="dim"), vertical="middle")
        else:
            start, cpu = time.perf_counter(), time.thread_time()
            plt = self.plt
            plt.clear_figure()
            self.last_points = draw_lines(plt, self._lines, max(self.size.width - 8, 10), decimate=self.decimate)
            try:
                result = super().render()
            except Exception as exc:  # a plotting library edge case must not kill the app
                result = Text(f"cannot draw this plot: {exc}", style="red")
            self.last_build_s = time.perf_counter() - start
            self.last_build_cpu_s = time.thread_time() - cpu
            self.builds += 1
        self._cache = (key, result)
        return result
