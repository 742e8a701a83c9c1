"""A line plot of one metric for one or several runs (textual-plotext), drawn off the UI thread.

``set_lines`` only records the series. A plot that is on screen then asks the drawing thread
(``builder.CANVAS_JOBS``) for its picture: the series cut to a few points per column, their pixel
positions compared with the picture shown (unchanged: nothing more is done, nothing is repainted),
else plotext's drawing as Rich text, posted back as :class:`CanvasDrawn`. The UI thread paints
that text. A plot that is not on screen (another tab, a covered screen) asks when it is next
rendered; a newer request replaces a waiting one, so a busy dashboard draws once for several polls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.align import Align
from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual_plotext import PlotextPlot

from idmm_tui.tui.builder import CANVAS_JOBS
from idmm_tui.tui.canvas import Line, PlotPoints, draw, plot_points


@dataclass(eq=False)
class CanvasDrawn(Message, bubble=False):
    """The drawing thread's answer to one request of a plot (``text`` None: the picture did not change)."""

    request: int
    key: tuple
    text: Text | None
    points: int
    wall_s: float
    cpu_s: float


class CurvePlot(PlotextPlot):
    """A plot of :class:`Line` series, drawn in the background, repainted only when its pixels change."""

    DEFAULT_CSS = """
    CurvePlot {
        width: 1fr;
        height: 1fr;
        min-height: 5;
    }
    """

    #: Cut the series before plotting (off only to measure what it saves: scripts/bench_tui_plot.py).
    decimate = True

    def __init__(
        self, *, empty_text: str = "waiting for metrics…", id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._lines: list[Line] = []
        self._live = False
        self._empty = empty_text
        self._version = 0
        self._requested: tuple | None = None  # (version, width, height, theme) last asked for
        self._request_id = 0
        self._shown_id = 0  # the request whose answer is on screen
        self._shown_key: tuple | None = None  # its pixel key
        self._canvas: Text | None = None
        self._strips: list[Strip] = []
        self._strips_key: tuple | None = None
        self.builds = 0  # pictures painted (a request whose pixels did not change paints none)
        self.skipped = 0  # requests answered "unchanged"
        self.last_build_s: float | None = None  # wall time of the last drawing (drawing thread)
        self.last_build_cpu_s: float | None = None  # its CPU time
        self.last_points = 0

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

    def set_lines(self, lines: list[Line], *, empty_text: str | None = None, live: bool = False) -> None:
        """Show these series (``live``: the run is still writing them; the axes leave room for more)."""
        self._lines = list(lines)
        self._live = live
        if empty_text is not None:
            self._empty = empty_text
        self._version += 1
        if not self.point_count:
            self._canvas, self._shown_key = None, None
            self.refresh()
        elif self.is_on_screen:
            self._request()
        else:
            self.refresh()  # asks when it is rendered (shown)

    # -- drawing ---------------------------------------------------------------------------------

    def _wanted(self) -> tuple:
        return (self._version, self.size.width, self.size.height, self.app.theme)

    def _request(self) -> None:
        """Ask the drawing thread for the picture of the current lines at the current size."""
        wanted = self._wanted()
        if wanted == self._requested or self.size.width <= 0 or self.size.height <= 0:
            return
        self._requested = wanted
        self._request_id += 1
        request, width, height = self._request_id, self.size.width, self.size.height
        lines, live, decimate, shown = tuple(self._lines), self._live, self.decimate, self._shown_key
        theme = self._get_plotext_theme_name(self.app.theme)
        plt = self.plt

        def job() -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                points: PlotPoints = plot_points(list(lines), width, height, live=live, decimate=decimate)
                key, count = (points.key, theme), points.count
                text = None if key == shown else draw(plt, points, width, height, theme)
            except Exception as exc:  # a plotting library edge case must not kill the app
                text, key, count = Text(f"cannot draw this plot: {exc}", style="red"), ("error", request), 0
            self.post_message(
                CanvasDrawn(request, key, text, count, time.perf_counter() - start, time.thread_time() - cpu)
            )

        CANVAS_JOBS.submit(id(self), job)

    def on_canvas_drawn(self, message: CanvasDrawn) -> None:
        if message.request <= self._shown_id:
            return  # an answer older than the one on screen
        self._shown_id = message.request
        self.last_build_s, self.last_build_cpu_s = message.wall_s, message.cpu_s
        if message.text is None:
            self.skipped += 1
            return
        self._canvas, self._shown_key = message.text, message.key
        self.last_points = message.points
        self.builds += 1
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.point_count and self._wanted() != self._requested:
            self._request()  # new size or theme: ask for a new picture, paint the old one meanwhile
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """A line of the picture, converted to strips once per picture (not on every refresh)."""
        if self._canvas is None or not self.point_count:
            return super().render_line(y)
        width, style = self.size.width, self.visual_style
        key = (id(self._canvas), self.size, style)
        if key != self._strips_key:
            self._strips = Visual.to_strips(self, visualize(self, self._canvas), width, self.size.height, style)
            self._strips_key = key
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, style.rich_style)

    def render(self) -> RenderResult:
        if not self.point_count:
            return Align.center(Text(self._empty, style="dim"), vertical="middle")
        return Text("")  # the first picture is being drawn
