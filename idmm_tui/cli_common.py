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


def out_file(path: Path | None, option: str = "--out") -> Path | None:
    """``path`` (``~`` expanded) when a file can be written there; a UsageError when it names an existing
    directory or sits under something that is not one (checked before any work is done)."""
    if path is None:
        return None
    from idmm_tui.errors import UsageError

    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; name a file to write (e.g. {path / 'out'}.…)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {path}: {parent} is a file, not a directory")
            break
    return path
