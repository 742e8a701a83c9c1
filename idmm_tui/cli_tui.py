"""``idmm tui``: opens the dashboard (imports Textual only when this command runs)."""

from __future__ import annotations

from pathlib import Path


def tui_command(runs_dir: Path) -> None:
    """Run the dashboard on ``runs_dir`` until the user quits."""
    from idmm_tui.tui.app import IdmmApp

    IdmmApp(Path(runs_dir)).run()
