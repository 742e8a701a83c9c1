"""How the dashboard writes values: numbers, durations, times and statuses (pure: no Textual).

Every function takes whatever a run's files hold (missing keys, wrong types, NaN) and returns text:
a viewer shows a dash, it never raises.
"""

from __future__ import annotations

import math
from typing import Any

STATUS_STYLE = {
    "running": "bold green",
    "completed": "cyan",
    "failed": "bold red",
    "interrupted": "yellow",
    "starting": "dim",
    "queued": "magenta",
}
STATUS_ICON = {"running": "▶", "completed": "✓", "failed": "✗", "interrupted": "‖", "starting": "…", "queued": "◷"}


def num(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, bool, string, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def text(value: Any) -> str:
    """A string as it is; anything else through ``str`` ('' for None)."""
    return value if isinstance(value, str) else ("" if value is None else str(value))


def fmt_duration(seconds: Any) -> str:
    """``3725`` as ``1h02m`` (``–`` when unknown)."""
    s = num(seconds)
    if s is None or s < 0:
        return "–"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals (thousands separated when 0)."""
    v = num(value)
    if v is None:
        return "–"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def fmt_lr(value: Any) -> str:
    """A learning rate, ``1.00e-03``."""
    v = num(value)
    return "–" if v is None else f"{v:.2e}"


def fmt_started(value: Any, *, year: bool = False) -> str:
    """``2026-11-26T12:00:05+0000`` as ``11-26 12:00`` (or ``2026-11-26 12:00``), as the trainer wrote it."""
    s = text(value)
    if len(s) >= 16 and s[4] == "-" and s[10] == "T":
        return (s[:10] if year else s[5:10]) + " " + s[11:16]
    return s or "–"
