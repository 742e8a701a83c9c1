"""Reading a run's ``summary.json`` dictionary: status, plan, position, times (pure: no Textual).

Every accessor tolerates any odd content (missing keys, wrong types): it returns an empty value.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any

from idmm_tui.runs.store import STATUSES, effective_status
from idmm_tui.tui.format import num, text


def on_this_host(summary: dict[str, Any]) -> bool:
    """Whether the run's process runs on this machine (no host recorded: assumed so)."""
    host = summary.get("host")
    return host in (None, "") or host == socket.gethostname()


#: How long a run's status is reused for the same summary (it asks the OS about the run's process).
STATUS_TTL = 0.5
_last_status: tuple[dict[str, Any], tuple, float, str] | None = None


def run_status(summary: dict[str, Any]) -> str:
    """The core's ``effective_status`` (a "running" run whose process is gone is "interrupted");
    "starting" for an empty or unreadable summary.

    The last answer is reused for the same summary (same object, status, pid and host) for
    ``STATUS_TTL`` seconds: a view asks several times per refresh, and each asks the OS.
    """
    global _last_status
    if not summary:
        return "starting"
    now = time.monotonic()
    inputs = (summary.get("status"), summary.get("pid"), summary.get("host"))
    last = _last_status
    if last is not None and last[0] is summary and last[1] == inputs and now - last[2] < STATUS_TTL:
        return last[3]
    try:
        status = effective_status(summary)
    except (OverflowError, TypeError, ValueError):  # an absurd pid
        status = text(summary.get("status"))
    status = status if status in STATUSES else text(summary.get("status")) or "?"
    _last_status = (summary, inputs, now, status)
    return status


def stages_of(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-stage final metrics, by stage name."""
    stages = summary.get("stages")
    if not isinstance(stages, dict):
        return {}
    return {k: v for k, v in stages.items() if isinstance(v, dict)}


def plan_of(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage plan: the entries with a string ``name``."""
    plan = summary.get("plan")
    return [p for p in plan if isinstance(p, dict) and isinstance(p.get("name"), str)] if isinstance(plan, list) else []


def current_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The current position (stage, epoch, step…), ``{}`` when none."""
    current = summary.get("current")
    return current if isinstance(current, dict) else {}


def stages_in_order(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-stage final metrics in plan order (summary.json may store its keys sorted)."""
    stages = stages_of(summary)
    names = [p["name"] for p in plan_of(summary) if p["name"] in stages]
    names += [n for n in stages if n not in names]
    return [stages[n] for n in names]


def last_test_acc(summary: dict[str, Any]) -> float | None:
    """The run's test accuracy, else the current one, else the last stage's."""
    value = num(summary.get("test_acc"))
    if value is not None:
        return value
    value = num(current_of(summary).get("test_acc"))
    if value is not None:
        return value
    for stage in reversed(stages_in_order(summary)):
        if num(stage.get("test_acc")) is not None:
            return num(stage.get("test_acc"))
    return None


def parse_time(value: Any) -> float | None:
    """Epoch seconds of a ``%Y-%m-%dT%H:%M:%S%z`` stamp (as the trainer writes them), else None."""
    try:
        return datetime.strptime(text(value), "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return None


def live_wall_time(summary: dict[str, Any], status: str, now: float | None = None) -> float | None:
    """``wall_time_s``, plus the time since the last summary write while the run is running."""
    wall = num(summary.get("wall_time_s"))
    if status != "running":
        return wall
    updated = parse_time(summary.get("updated_at"))
    if updated is None:
        return wall
    return (wall or 0.0) + max(0.0, (time.time() if now is None else now) - updated)
