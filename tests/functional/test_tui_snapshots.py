"""SVG snapshots of the dashboard over fixed fixture runs, with pytest-textual-snapshot (``snap_compare``).

The fixture runs have fixed names, timestamps and metrics and sit under a relative ``runs/`` (no tmp
path on screen); the system pane (live CPU values) is off, as in every app of ``test_tui.py``. The
snapshots are ``__snapshots__/test_tui_snapshots/*.svg``; after an intended change of the UI,
regenerate them and look at them (any browser) before committing:

    .venv/bin/python -m pytest tests/functional/test_tui_snapshots.py --snapshot-update

A mismatch writes ``snapshot_report.html`` (expected and actual side by side) in the current directory.
They depend on the Textual version (8.2.8 here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functional.test_tui import make_app, make_fixture_runs, wait_for

SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])


@pytest.fixture()
def runs(tmp_path, monkeypatch) -> Path:
    """The five fixture runs of ``test_tui.py`` under ./runs (relative: no tmp path appears on screen)."""
    monkeypatch.chdir(tmp_path)
    make_fixture_runs(tmp_path / "runs")
    return Path("runs")


async def settle(pilot, ready, what: str, timeout: float = 15.0) -> None:
    """Wait for ``ready()``, then until two exports 0.1 s apart are the same screen.

    The data is loaded by thread workers and the plots are drawn by the drawing thread, so under load
    a table or a plot can still be mid-layout when ``ready()`` holds; the snapshot is taken after this.
    """
    await wait_for(pilot, ready, timeout=timeout, what=what)
    previous = None
    for _ in range(int(timeout / 0.1)):
        screen = pilot.app.export_screenshot()
        if screen == previous:
            return
        previous = screen
        await pilot.pause(0.1)
    raise AssertionError(f"the screen did not settle within {timeout}s after {what}")


@SIZES
def test_runs_table(snap_compare, runs, size):
    """The runs table, newest first, the second row marked."""
    app = make_app(runs)

    async def run_before(pilot):
        await wait_for(pilot, lambda: app.screen.table.row_count == 5, what="rows")
        await pilot.press("down", "space")
        await settle(pilot, lambda: True, "the mark")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_run_view(snap_compare, runs, size):
    """A completed run: header, stage timeline and the four curves of its last stage."""
    app = make_app(runs)

    async def run_before(pilot):
        app.open_run(runs / "demo-idmm")
        screen = app.screen
        await settle(pilot, lambda: screen.summary and screen.curves.points and screen.recipe_text, "the poll")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("tab", ["curves", "recipe-diff"])
def test_compare(snap_compare, runs, tab):
    """Three runs overlaid (one colour each), then the keys their recipes differ in (tab 2)."""
    app = make_app(runs)

    async def run_before(pilot):
        app.open_compare([runs / "demo-idmm", runs / "demo-random-init", runs / "demo-no-cutmix"])
        screen = app.screen
        await wait_for(pilot, lambda: all(r.summary and r.recipe for r in screen.runs.values()), what="polls")
        if tab == "recipe-diff":
            await pilot.press("2")
        await settle(pilot, lambda: True, "the polls")

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_help(snap_compare, runs):
    """The key reference, built from the bindings of every screen."""
    app = make_app(runs)

    async def run_before(pilot):
        await wait_for(pilot, lambda: app.screen.table.row_count == 5, what="rows")
        await pilot.press("question_mark")
        await settle(pilot, lambda: True, "the help screen")

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
