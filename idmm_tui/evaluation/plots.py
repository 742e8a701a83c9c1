"""Scatter plots of labelled series: a PNG drawn with Pillow, and braille for the terminal with plotext.

PNGs stay Pillow's (no extra dependency, byte-for-byte the same on every machine, already framed with ticks
and a legend); a ``--out`` ending in ``.pdf`` or ``.svg`` gets a vector figure for papers from matplotlib
when the optional extra ``idmm[plots]`` is installed.

Both take the same :class:`Series` list, so a command draws its picture once for both. The PNG has a
title, a framed plot area (with ticks when the axes mean something — not for t-SNE), optional text
beside each point, and a legend on the right naming every series in its colour.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from idmm_tui.fsutil import atomic_write

RGB = tuple[int, int, int]

#: Tableau's 10 colours, then their light variants (matplotlib's tab20 order, distinct on white).
_TAB20: tuple[RGB, ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (174, 199, 232),
    (255, 187, 120),
    (152, 223, 138),
    (255, 152, 150),
    (197, 176, 213),
    (196, 156, 148),
    (247, 182, 210),
    (199, 199, 199),
    (219, 219, 141),
    (158, 218, 229),
)


def palette(n: int) -> list[RGB]:
    """``n`` distinct colours: Tableau's 20, then evenly spread hues (golden-ratio steps)."""
    colours = list(_TAB20[:n])
    for i in range(n - len(colours)):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.45 + 0.15 * (i % 2), 0.65)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


@dataclass
class Series:
    """Points of one legend entry, with optional text beside each point."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    color: RGB
    texts: Sequence[str] | None = None


# ---------------------------------------------------------------------------------------------
# PNG


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 × 10^k inside [lo, hi] (lo, hi > 0); just the decades when there are many."""
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10**k for m in (1, 2, 5) if lo <= m * 10**k <= hi]
    decades = [t for t in out if math.log10(t).is_integer()]
    return decades if len(out) > 12 and len(decades) >= 2 else out


def _fmt_tick(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.0e}"
    return f"{value:g}"


def _extent(values: list[float], log: bool) -> tuple[float, float]:
    vals = [math.log10(v) for v in values] if log else values
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.06 or (abs(lo) * 0.1 or 1.0)
    return lo - pad, hi + pad


def scatter_png(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    size: tuple[int, int] = (1000, 700),
    log_x: bool = False,
    ticks: bool = True,
    radius: int = 3,
) -> None:
    """Draw ``series`` and write the picture to ``path`` as PNG (atomically); a ``.pdf`` / ``.svg`` path gets a
    vector figure drawn by matplotlib (:func:`scatter_vector`, the optional extra ``idmm[plots]``)."""
    if Path(path).suffix.lower() in VECTOR_SUFFIXES:
        return scatter_vector(path, series, title=title, x_label=x_label, y_label=y_label, size=size, log_x=log_x,
                              ticks=ticks, radius=radius)  # fmt: skip
    width, height = size
    small, normal, big = _font(12), _font(14), _font(18)
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    legend_w = min(int(width * 0.3), 40 + max((int(draw.textlength(s.name, font=normal)) for s in series), default=0))
    left, top = (70 if ticks else 20), 50
    right, bottom = width - legend_w - 20, height - (55 if ticks else 20)
    draw.text((width / 2, 22), title, fill=(0, 0, 0), font=big, anchor="mm")
    draw.rectangle((left, top, right, bottom), outline=(60, 60, 60))

    xs = [float(v) for s in series for v in s.x]
    ys = [float(v) for s in series for v in s.y]
    if xs and ys:
        x0, x1 = _extent(xs, log_x)
        y0, y1 = _extent(ys, False)
        texts = [str(t) for s in series for t in (s.texts or ())]
        if texts:  # widen the x range on the right so that the rightmost point's text stays inside the frame
            room = max(draw.textlength(t, font=small) for t in texts) + radius + 8
            x1 = x0 + (x1 - x0) / max(0.5, 1.0 - room / max(1, right - left))

        def px(x: float, y: float) -> tuple[float, float]:
            u = math.log10(x) if log_x else x
            return left + (u - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

        if ticks:
            grid = (235, 235, 235)
            for t in _log_ticks(10**x0, 10**x1) if log_x else nice_ticks(x0, x1):
                u, _ = px(t, y0)
                draw.line((u, top + 1, u, bottom - 1), fill=grid)
                draw.text((u, bottom + 6), _fmt_tick(t), fill=(40, 40, 40), font=small, anchor="mt")
            for t in nice_ticks(y0, y1):
                _, v = px(10**x0 if log_x else x0, t)
                draw.line((left + 1, v, right - 1, v), fill=grid)
                draw.text((left - 6, v), _fmt_tick(t), fill=(40, 40, 40), font=small, anchor="rm")
            draw.text(((left + right) / 2, height - 14), x_label, fill=(0, 0, 0), font=normal, anchor="mm")
            label = Image.new("RGBA", (int(draw.textlength(y_label, font=normal)) + 4, 20), (255, 255, 255, 0))
            ImageDraw.Draw(label).text((2, 2), y_label, fill=(0, 0, 0), font=normal)
            rotated = label.rotate(90, expand=True)
            image.paste(rotated, (8, int((top + bottom - rotated.height) / 2)), rotated)
        for s in series:
            for i, (x, y) in enumerate(zip(s.x, s.y, strict=True)):
                u, v = px(float(x), float(y))
                draw.ellipse((u - radius, v - radius, u + radius, v + radius), fill=s.color)
                if s.texts:
                    draw.text(
                        (u + radius + 3, v - radius - 2), str(s.texts[i]), fill=(30, 30, 30), font=small, anchor="lb"
                    )

    # legend: as many entries as fit, then a count of the rest
    line = 20
    room = max(1, (height - top - 10) // line)
    shown = list(series) if len(series) <= room else list(series)[: room - 1]
    lx, ly = right + 20, top
    for s in shown:
        draw.ellipse((lx, ly + 5, lx + 10, ly + 15), fill=s.color)
        draw.text((lx + 16, ly + 10), s.name, fill=(0, 0, 0), font=normal, anchor="lm")
        ly += line
    if len(shown) < len(series):
        draw.text((lx, ly + 10), f"… {len(series) - len(shown)} more", fill=(80, 80, 80), font=normal, anchor="lm")
    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))


#: Paper figures: the same picture as vector graphics, through matplotlib (``pip install 'idmm[plots]'``).
VECTOR_SUFFIXES = (".pdf", ".svg")


def scatter_vector(
    path: Path,
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "",
    y_label: str = "",
    size: tuple[int, int] = (1000, 700),
    log_x: bool = False,
    ticks: bool = True,
    radius: int = 3,
) -> None:
    """:func:`scatter_png`'s picture as a PDF or SVG drawn by matplotlib (no pyplot, no global backend)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        from idmm_tui.errors import UsageError

        raise UsageError(
            f"{path}: PDF and SVG figures are drawn with matplotlib: pip install 'idmm[plots]' (or write a .png)"
        ) from None
    fig = Figure(figsize=(size[0] / 100, size[1] / 100), layout="constrained")
    ax = fig.add_subplot()
    for s in series:
        colour = tuple(c / 255 for c in s.color)
        ax.scatter(list(s.x), list(s.y), s=(1.6 * radius) ** 2, color=[colour], label=s.name, linewidths=0)
        for x, y, text in zip(s.x, s.y, s.texts or (), strict=False):
            ax.annotate(str(text), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8)
    if log_x:
        ax.set_xscale("log")
    if ticks:
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(True, color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title)
    if series:
        columns = 1 + (len(series) - 1) // 25
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, ncols=columns,
                  fontsize=9 if columns == 1 else 6, markerscale=1.5, handletextpad=0.3)  # fmt: skip
    fmt = Path(path).suffix.lower().lstrip(".")
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format=fmt, metadata={"Creator": "idmm"}))


# ---------------------------------------------------------------------------------------------
# terminal


def scatter_text(
    series: Sequence[Series],
    *,
    title: str,
    width: int = 100,
    height: int = 30,
    x_label: str = "",
    y_label: str = "",
    log_x: bool = False,
    color: bool = True,
    max_key: int = 40,
) -> str:
    """The plot in braille characters (plotext), one colour per series, and a colour key below it."""
    import plotext as plt

    plt.clear_figure()
    try:
        plt.plotsize(width, height)
        plt.title(title)
        if x_label:
            plt.xlabel(x_label)
        if y_label:
            plt.ylabel(y_label)
        xs = [float(v) for s in series for v in s.x]
        ys = [float(v) for s in series for v in s.y]
        cell = 1.0
        if xs and ys:  # the PNG's margins, and room on the right for the longest point text
            x0, x1 = _extent(xs, log_x)
            y0, y1 = _extent(ys, False)
            cell = (x1 - x0) / max(width - 10, 1)  # about one character cell in x units
            longest = max((len(str(t)) for s in series for t in (s.texts or ())), default=0)
            x1 += cell * (longest + 2) * 1.1 if longest else 0.0
            plt.xlim(x0, x1)
            plt.ylim(y0, y1)
            if log_x:  # plotted at log10(x), labelled with x
                marks = _log_ticks(10**x0, 10**x1)
                plt.xticks([math.log10(t) for t in marks], [_fmt_tick(t) for t in marks])
        for s in series:
            us = [math.log10(float(v)) if log_x else float(v) for v in s.x]
            plt.scatter(us, [float(v) for v in s.y], marker="braille", color=s.color)
            for u, y, text in zip(us, s.y, s.texts or (), strict=False):
                plt.text(str(text), u + cell, float(y), color=s.color, alignment="left")
        text = plt.build()
    finally:
        plt.clear_figure()
    if not color:
        text = plt.uncolorize(text)
    key = [(plt.colorize("●", s.color) if color else "●") + " " + s.name for s in series[:max_key]]
    if len(series) > max_key:
        key.append(f"… {len(series) - max_key} more")
    return text + "\n" + "  ".join(key) + "\n"
