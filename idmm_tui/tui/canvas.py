"""A curve plot's picture, computed away from the UI thread (numpy and plotext, no widgets).

:func:`plot_points` cuts each series to a few points per character column and says where they fall
on the terminal's pixel grid (``key``): two requests with the same key draw the same picture, so a
plot whose points did not move by a pixel is not redrawn. :func:`draw` hands the points to plotext
and returns the picture as Rich text, which is all the UI thread has to paint.

A live curve (its run still writing it) gets axis limits rounded outwards (``headroom_limit``) so
that the axes, and the buckets the points fall in, stay put while points arrive; a finished curve's
axes span its data exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.style import Style as RichStyle
from rich.text import Text
from textual.strip import Strip
from textual_plotext.plot import Plot

from idmm_tui.tui.downsample import bucket_extremes, downsample, headroom_limit

#: Columns taken by the y axis's tick labels (the data area is narrower than the widget).
AXIS_COLUMNS = 8


class Line:
    """One series: its points (arrays, or consecutive parts of them), legend label and RGB colour.

    The parts are joined the first time ``xs`` / ``ys`` are read: by the drawing thread, not the UI.
    """

    __slots__ = ("label", "color", "_x_parts", "_y_parts", "_xs", "_ys", "_count")

    def __init__(
        self,
        label: str,
        xs: np.ndarray | tuple[np.ndarray, ...],
        ys: np.ndarray | tuple[np.ndarray, ...],
        color: tuple[int, int, int] | None = None,
    ) -> None:
        self.label, self.color = label, color
        self._x_parts = xs if isinstance(xs, tuple) else (np.asarray(xs, dtype=float),)
        self._y_parts = ys if isinstance(ys, tuple) else (np.asarray(ys, dtype=float),)
        self._xs: np.ndarray | None = None
        self._ys: np.ndarray | None = None
        self._count = sum(len(part) for part in self._y_parts)

    def __len__(self) -> int:
        return self._count

    @property
    def xs(self) -> np.ndarray:
        if self._xs is None:
            self._xs = _join(self._x_parts)
        return self._xs

    @property
    def ys(self) -> np.ndarray:
        if self._ys is None:
            self._ys = _join(self._y_parts)
        return self._ys


def _join(parts: tuple[np.ndarray, ...]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0)


@dataclass(frozen=True)
class PlotPoints:
    """What a plot draws: the cut series, the axis limits (None: plotext's own) and their pixel ``key``."""

    lines: tuple[tuple[np.ndarray, np.ndarray, tuple[int, int, int] | None], ...]
    xlim: tuple[float, float] | None
    ylim: tuple[float, float] | None
    key: tuple
    count: int


def points_for_width(width: int) -> int:
    """How many points a plot ``width`` characters wide can show: about two per column (braille)."""
    return max(2 * int(width), 16)


def _outward(lo: float, hi: float) -> tuple[float, float]:
    """``[lo, hi]`` widened to round values (a tenth of the span's order of magnitude)."""
    if not hi > lo:
        return lo, hi
    return -headroom_limit(-hi, -lo), headroom_limit(lo, hi)


def plot_points(lines: list[Line], width: int, height: int, *, live: bool = False, decimate: bool = True) -> PlotPoints:
    """The points of ``lines`` a ``width`` x ``height`` plot draws, and their position on its pixel grid."""
    shown = [line for line in lines if len(line)]
    if not shown:
        return PlotPoints((), None, None, ("empty", width, height), 0)
    x_lo = min(float(np.min(line.xs)) for line in shown)
    x_hi = max(float(np.max(line.xs)) for line in shown)
    xlim = (x_lo, headroom_limit(x_lo, x_hi)) if live and x_hi > x_lo else None
    columns = max(width - AXIS_COLUMNS, 10)
    cut = []
    for line in shown:
        if not decimate:
            xs, ys = line.xs, line.ys
        elif xlim is not None:
            xs, ys = bucket_extremes(line.xs, line.ys, xlim[0], xlim[1], columns)
        else:
            xs, ys = downsample(line.xs, line.ys, points_for_width(columns))
        cut.append((xs, ys, line.color))
    y_lo = min(float(np.min(ys)) for _, ys, _ in cut)
    y_hi = max(float(np.max(ys)) for _, ys, _ in cut)
    ylim = _outward(y_lo, y_hi) if live and y_hi > y_lo else None
    key = _pixel_key(cut, xlim or (x_lo, x_hi), ylim or (y_lo, y_hi), 2 * width, 4 * height)
    return PlotPoints(tuple(cut), xlim, ylim, (width, height, xlim, ylim, *key), sum(len(xs) for xs, _, _ in cut))


def _pixel_key(cut: list, xlim: tuple[float, float], ylim: tuple[float, float], px: int, py: int) -> tuple:
    """The axis limits (exact when they are the data's) and each series' points on a ``px`` x ``py`` grid."""
    out: list = []
    x0, x1 = xlim
    y0, y1 = ylim
    sx = px / (x1 - x0) if x1 > x0 else 0.0
    sy = py / (y1 - y0) if y1 > y0 else 0.0
    out.append((x0, x1, y0, y1))
    for xs, ys, color in cut:
        grid = np.stack([np.floor((xs - x0) * sx), np.floor((ys - y0) * sy)]).astype(np.int32)
        keep = np.concatenate([[True], np.any(np.diff(grid, axis=1) != 0, axis=0)])  # repeats draw nothing new
        out.append((color, grid[:, keep].tobytes()))
    return tuple(out)


def draw(plt: Plot, points: PlotPoints, width: int, height: int, theme: str) -> Text:
    """The plotext picture of ``points`` as Rich text.

    Only the left and bottom axes are drawn (no box, no legend, no axis label: the widget's border
    carries the title, and the screens show each run's colour), so a small plot keeps its rows for data.
    """
    plt.clear_figure()
    plt.xaxes(True, False)
    plt.yaxes(True, False)
    for xs, ys, color in points.lines:
        if len(xs) == 1:  # a single point (one test accuracy so far): draw it as a visible dot
            plt.scatter(xs.tolist(), ys.tolist(), marker="dot", color=color)
        else:
            plt.plot(xs.tolist(), ys.tolist(), marker="braille", color=color)
    if points.xlim is not None:
        plt.xlim(*points.xlim)
    if points.ylim is not None:
        plt.ylim(*points.ylim)
    plt.plotsize(width, height)
    plt._set_size(width, height)  # as textual-plotext's own render does (its issue #5)
    plt.theme(theme)
    return Text.from_ansi(plt.build())


_consoles = threading.local()


def to_strips(text: Text, width: int, height: int, base: RichStyle | None = None) -> list[Strip]:
    """``text`` as ``height`` lines of ``width`` cells, over the ``base`` style, with selection offsets:
    what Textual's compositor would make of it (a Rich console of the calling thread renders it)."""
    console = getattr(_consoles, "console", None)
    if console is None:
        console = _consoles.console = Console(
            width=width, height=height, color_system="truecolor", force_terminal=True, legacy_windows=False, _environ={}
        )
    options = console.options.update(width=width, height=height, no_wrap=True, overflow="crop")
    lines = console.render_lines(text, options, pad=True, new_lines=False)
    strips = [Strip(line, width) for line in lines]
    if base is not None:
        strips = [strip.apply_style(base) for strip in strips]
    return [strip.apply_offsets(0, y) for y, strip in enumerate(strips)]
