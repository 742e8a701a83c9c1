"""The runs table's rows: one :class:`RunRow` per run directory, filtering and sorting (pure: no Textual)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idmm_tui.tui.format import fmt_duration, fmt_num, fmt_started, num, text
from idmm_tui.tui.summary import current_of, last_test_acc, live_wall_time, plan_of, run_status, stages_in_order

#: Columns of the runs table (RunRow attribute, title): what changes first, so that a narrow terminal
#: shows it without scrolling sideways.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("status", "status"),
    ("name", "name"),
    ("position", "stage / epoch"),
    ("test_acc", "test acc"),
    ("images_per_s", "img/s"),
    ("duration_s", "duration"),
    ("started_at", "started"),
    ("backbone", "backbone"),
    ("dataset", "dataset"),
    ("method", "method"),
)
#: The column shown when some run is a cluster job (``idmm sweep --executor slurm``).
JOB_COLUMN = ("job", "job")


@dataclass(frozen=True)
class RunRow:
    """One line of the runs table."""

    path: Path
    name: str
    status: str
    backbone: str
    dataset: str
    method: str
    stage: str
    epoch: str
    test_acc: float | None
    images_per_s: float | None
    started_at: str
    duration_s: float | None
    job: str = ""  # a cluster job's id and state (from its sweep's manifest)

    @property
    def position(self) -> str:
        """Current stage and epoch, e.g. ``finetune_28 3/20``."""
        return f"{self.stage} {self.epoch}".strip()

    def cells(self) -> tuple[str, ...]:
        """Plain text of every column (for the filter)."""
        return (
            self.status,
            self.name,
            self.backbone,
            self.dataset,
            self.method,
            self.position,
            fmt_num(self.test_acc),
            fmt_num(self.images_per_s, 0),
            fmt_started(self.started_at, year=True),
            fmt_duration(self.duration_s),
            self.job,
        )

    def matches(self, query: str) -> bool:
        """Every whitespace-separated term of ``query`` appears in some column (case-insensitive)."""
        terms = query.lower().split()
        if not terms:
            return True
        haystack = " ".join(self.cells()).lower()
        return all(term in haystack for term in terms)


def run_row(path: Path, summary: dict[str, Any], job: str = "") -> RunRow:
    """The table row of the run at ``path`` with this summary (``job``: its cluster job, as text)."""
    status = run_status(summary)
    current = current_of(summary)
    stage, epoch = text(current.get("stage")), ""
    if current:
        e, total = num(current.get("epoch")), num(current.get("epochs"))
        if e is not None:
            epoch = f"{int(e)}/{int(total)}" if total is not None else str(int(e))
    elif status == "completed" and plan_of(summary):
        last = plan_of(summary)[-1]
        stage = last["name"]
        epochs = num(last.get("epochs"))
        epoch = f"{int(epochs)}/{int(epochs)}" if epochs is not None else ""
    ips = num(current.get("images_per_s"))
    if ips is None:
        for s in reversed(stages_in_order(summary)):
            ips = num(s.get("images_per_s"))
            if ips is not None:
                break
    return RunRow(
        path=Path(path),
        name=text(summary.get("name")) or Path(path).name,
        status=status,
        backbone=text(summary.get("backbone")),
        dataset=text(summary.get("dataset")),
        method=text(summary.get("method")),
        stage=stage,
        epoch=epoch,
        test_acc=last_test_acc(summary),
        images_per_s=ips,
        started_at=text(summary.get("started_at")),
        duration_s=live_wall_time(summary, status),
        job=job,
    )


def queued_row(path: Path, job: str) -> RunRow:
    """The row of a sweep cell whose cluster job has not started its run yet (no run directory)."""
    name = Path(path).name
    return RunRow(Path(path), name, "queued", "", "", "", "", "", None, None, "", None, job)


def sort_rows(rows: list[RunRow], column: str, reverse: bool) -> list[RunRow]:
    """Rows sorted by ``column``; missing values always last, ties by start time (newest first)."""
    rows = sorted(rows, key=lambda r: r.started_at, reverse=True)

    def key(row: RunRow):
        value = getattr(row, column)
        if column == "position":
            value = (row.stage, _first_int(row.epoch) or 0) if row.stage else None
        missing = value is None or value == ""
        return (missing, value if not missing else 0)

    present = [r for r in rows if not key(r)[0]]
    absent = [r for r in rows if key(r)[0]]
    return sorted(present, key=lambda r: key(r)[1], reverse=reverse) + absent


def _first_int(value: str) -> int | None:
    head = value.split("/")[0]
    return int(head) if head.isdigit() else None
