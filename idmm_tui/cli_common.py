"""What every ``idmm`` command module shares: the stderr console and the ``--runs-dir`` option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

#: Progress, notes and errors go to stderr; stdout carries only results (tables, ``--json``).
err = Console(stderr=True)

RunsDirOpt = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="where runs live \\[default: $IDMM_RUNS_DIR or ./runs]", show_default=False),
]


def runs_dir(value: Path | None) -> Path:
    """The ``--runs-dir`` given, or ``$IDMM_RUNS_DIR`` / ``./runs``."""
    from idmm_tui.runs.store import runs_dir_or_default

    return runs_dir_or_default(value)
