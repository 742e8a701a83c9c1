"""Starting ``idmm run`` in a child process: the one command line every launcher uses.

The dashboard (launch / resume) and ``idmm sweep`` (one child per cell) run exactly what a user would
type, so a run started by either looks the same as one started from a terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def idmm_command(launcher: list[str] | None = None) -> list[str]:
    """``python -m idmm_tui`` with this interpreter, or under ``launcher`` (``torchrun … -m idmm_tui``)."""
    return [*(launcher or [sys.executable]), "-m", "idmm_tui"]


def spawn_detached(args: list[str], out: Path, *, command: list[str] | None = None) -> subprocess.Popen:
    """``idmm ARGS`` (or the whole ``command``: ``torchrun … -m idmm_tui run --resume …``) in the
    background, in a session of its own, output appended to ``out``.

    A detached child outlives its parent and does not get the parent terminal's Ctrl-C.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "ab") as handle:
        return subprocess.Popen(
            command or [*idmm_command(), *args],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
