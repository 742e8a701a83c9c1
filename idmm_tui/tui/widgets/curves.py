"""A line plot of one metric for one or several runs (textual-plotext), drawn off the UI thread.

``set_lines`` only records the series. A plot that is on screen then asks the drawing thread
(``builder.CANVAS_JOBS``) for its picture: the series cut to a few points per column, their pixel
positions compared with the picture shown (unchanged: nothing more is done, nothing is repainted),
else plotext's drawing rendered to strips (terminal lines), posted back as :class:`CanvasDrawn`.
The UI thread only hands those strips to the compositor. A plot that is not on screen (another tab,
a covered screen) asks when it is next rendered; a newer request replaces a waiting one, so a busy
dashboard draws once for several polls.
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
from textual_plotext import PlotextPlot

from idmm_tui.tui.builder import CANVAS_JOBS
from idmm_tui.tui.canvas import Line, draw, plot_points, to_strips


@dataclass(eq=False)
class CanvasDrawn(Message, bubble=False):
    """The drawing thread's answer to one request of a plot (``strips`` None: the picture did not change)."""

    request: int
    key: tuple
    strips: list[Strip] | None
    points: int
    wall_s: float
    cpu_s: float


class CurvePlot(PlotextPlot):
    """A plot of :class:`Line` series, drawn in the background, repainted only when its pixels change."""

    class Painted(Message):
        """The plot painted its first picture (it bubbles: a screen can start slower work after it)."""

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
        self._strips: list[Strip] | None = None  # the picture on screen
        self.builds = 0  # pictures painted (a request whose pixels did not change paints none)
        self.painted = False  # the first picture was painted (rendered for the compositor)
        self.skipped = 0  # requests answered "unchanged"
        self.last_build_s: float | None = None  # wall time of the last answer (drawing thread)
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
        return sum(len(line) for line in self._lines)

    def set_lines(self, lines: list[Line], *, empty_text: str | None = None, live: bool = False) -> None:
        """Show these series (``live``: the run is still writing them; the axes leave room for more)."""
        self._lines = list(lines)
        self._live = live
        if empty_text is not None:
            self._empty = empty_text
        self._version += 1
        if not self.point_count:
            self._strips, self._shown_key = None, None
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
        lines, live, decimate, shown = list(self._lines), self._live, self.decimate, self._shown_key
        theme = self._get_plotext_theme_name(self.app.theme)
        plt = self.plt  # used by the drawing thread only
        base = self.visual_style.rich_style

        def job() -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                points = plot_points(lines, width, height, live=live, decimate=decimate)
                key, count = (points.key, theme), points.count
                if key == shown:
                    strips = None
                else:
                    strips = to_strips(draw(plt, points, width, height, theme), width, height, base)
            except Exception as exc:  # a plotting library edge case must not kill the app
                error = Text(f"cannot draw this plot: {exc}", style="red")
                strips, key, count = to_strips(error, width, height, base), ("error", request), 0
            self.post_message(
                CanvasDrawn(request, key, strips, count, time.perf_counter() - start, time.thread_time() - cpu)
            )

        CANVAS_JOBS.submit(id(self), job)

    def on_canvas_drawn(self, message: CanvasDrawn) -> None:
        if message.request <= self._shown_id:
            return  # an answer older than the one on screen
        self._shown_id = message.request
        self.last_build_s, self.last_build_cpu_s = message.wall_s, message.cpu_s
        if message.strips is None:
            self.skipped += 1
            return
        self._strips, self._shown_key = message.strips, message.key
        self.last_points = message.points
        self.builds += 1
        self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.point_count and self._wanted() != self._requested:
            self._request()  # new size or theme: ask for a new picture, paint the old one meanwhile
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """A line of the picture (drawn by the drawing thread), else of :meth:`render`."""
        if self._strips is None or not self.point_count:
            return super().render_line(y)
        if not self.painted:
            self.painted = True
            self.post_message(self.Painted())
        width = self.size.width
        if y < len(self._strips):
            return self._strips[y].adjust_cell_length(width)
        return Strip.blank(width, self.visual_style.rich_style)

    def render(self) -> RenderResult:
        if not self.point_count:
            return Align.center(Text(self._empty, style="dim"), vertical="middle")
        return Text("")  # the first picture is being drawn
