"""Where evaluation results go: ``<run>/eval/<name>.json``, pictures beside them, and ``summary["evals"]``.

The summary is shared with the training process, which rewrites it whole while it runs; an
evaluation therefore only records into runs that are not running (:func:`require_not_running`), and
it re-reads the summary just before its atomic write so that no other key is lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from idmm_tui.errors import RunStateError
from idmm_tui.fsutil import atomic_write_json
from idmm_tui.runs.store import RunDir, effective_status

EVAL_DIR = "eval"


def eval_dir(run: RunDir) -> Path:
    return run.path / EVAL_DIR


def require_not_running(run: RunDir, what: str) -> None:
    """RunStateError when a training process is still writing ``run`` (its summary would be overwritten)."""
    summary = run.read_summary()
    if effective_status(summary) == "running":
        raise RunStateError(
            f"run {run.path} is still running (pid {summary.get('pid')}); {what} records into its "
            "summary.json, which the training process rewrites — wait until it finishes or stop it"
        )


def record_eval(run: RunDir, kind: str, key: str, result: dict[str, Any]) -> Path:
    """Write ``<run>/eval/<kind>-<key>.json`` and set ``summary["evals"][kind][key]``; returns the JSON path."""
    path = eval_dir(run) / f"{kind}-{key}.json"
    require_not_running(run, f"idmm eval {kind}")
    atomic_write_json(path, result)
    summary = run.read_summary()
    evals = summary.get("evals") if isinstance(summary.get("evals"), dict) else {}
    table = evals.get(kind) if isinstance(evals.get(kind), dict) else {}
    table[key] = result
    evals[kind] = table
    summary["evals"] = evals
    run.write_summary(summary)
    return path
