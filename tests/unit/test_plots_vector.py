"""Paper figures: `--out fig.pdf|svg` draws the scatter plot with matplotlib (optional extra idmm[plots])."""

from __future__ import annotations

import pytest

from idmm_tui.errors import UsageError
from idmm_tui.evaluation import plots
from idmm_tui.evaluation.plots import Series, palette, scatter_png


def series() -> list[Series]:
    colours = palette(2)
    return [
        Series("idmm", [1.0, 5.0, 22.0], [60.0, 70.0, 80.0], colours[0], ["nano", "micro", "tiny"]),
        Series("none (random init)", [1.0, 5.0], [40.0, 45.0], colours[1]),
    ]


def test_pdf_and_svg_are_vector_figures_with_axes_and_legend(tmp_path):
    pytest.importorskip("matplotlib")
    pdf, svg = tmp_path / "fig3.pdf", tmp_path / "fig3.svg"
    scatter_png(pdf, series(), title="params vs test_acc", x_label="params (M)", y_label="test_acc", log_x=True)
    scatter_png(svg, series(), title="t-SNE", ticks=False)
    assert pdf.read_bytes().startswith(b"%PDF")
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "none (random init)" in text and "t-SNE" in text  # legend and title are text, not pixels


def test_a_vector_figure_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(UsageError, match=r"pip install 'idmm\[plots\]'"):
        plots.scatter_png(tmp_path / "f.pdf", series(), title="x")
    plots.scatter_png(tmp_path / "f.png", series(), title="x")  # PNGs need nothing
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
