"""The stage timeline of a run and the current stage's ETA (pure: no Textual)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from idmm_tui.tui.curves import RunCurves
from idmm_tui.tui.format import num, text
from idmm_tui.tui.summary import current_of, plan_of, run_status, stages_of


@dataclass(frozen=True)
class StageState:
    name: str
    kind: str
    epochs: int | None
    resolution: int | None
    state: str  # done | pending | running | interrupted | failed
    epoch: int | None  # the current epoch of the active stage


def timeline(summary: dict[str, Any]) -> list[StageState]:
    status = run_status(summary)
    stages, current = stages_of(summary), current_of(summary)
    out = []
    active_found = False
    for item in plan_of(summary):
        name = item["name"]
        epochs, res = num(item.get("epochs")), num(item.get("resolution"))
        epoch = None
        if stages.get(name, {}).get("status") == "completed":
            state = "done"
        elif current.get("stage") == name and not active_found:
            state, active_found = ("running" if status in ("running", "starting") else status), True
            epoch = int(num(current.get("epoch")) or 0) or None
        elif status in ("failed", "interrupted") and not active_found and not current:
            state, active_found = status, True  # stopped before the stage reported a position
        else:
            state = "pending"
        out.append(
            StageState(
                name,
                text(item.get("kind")),
                int(epochs) if epochs is not None else None,
                int(res) if res is not None else None,
                state,
                epoch,
            )
        )
    return out


def stage_eta(summary: dict[str, Any], curves: RunCurves) -> float | None:
    """Seconds left in the current stage at the recent step rate (None when not running or unknown)."""
    if run_status(summary) != "running":
        return None
    current = current_of(summary)
    stage = curves.stages.get(text(current.get("stage")))
    step, total = num(current.get("step")), num(current.get("total_steps"))
    if stage is None or total is None:
        return None
    done = stage.last_train_step()
    if done is None:
        done = step
    if done is None or not math.isfinite(done):
        return None
    rate = stage.rate()
    if rate is None:
        return None
    return max(total - done, 0.0) / rate
