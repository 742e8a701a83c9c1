"""Progress display for ``idmm run``: a rich progress bar on a terminal, plain lines otherwise.

Implements the trainer's ``Reporter`` protocol; writes to stderr only, so ``--json`` keeps stdout
for the summary.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RichReporter:
    """One bar per stage: steps done / total, epoch, loss, images/s and ETA."""

    def __init__(self, console: Console):
        self.console = console
        self.live = console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ep {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[ips]} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self.task = None

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def stage_started(self, stage, total_steps: int, done_steps: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=True)
        self.task = self.progress.add_task(
            stage.name, total=total_steps, completed=done_steps, epoch="-", loss="-", ips="-"
        )

    def step(self, stage, epoch: int, step: int, loss: float, images_per_s: float) -> None:
        if self.task is not None:
            self.progress.update(
                self.task,
                completed=step,
                epoch=f"{epoch}/{stage.cfg.epochs}",
                loss=f"{loss:.4f}" if math.isfinite(loss) else "…",
                ips=f"{images_per_s:.0f}",
            )

    def epoch_done(self, stage, record: dict[str, Any]) -> None:
        acc = f"  test_acc {record['test_acc']:.2f}" if "test_acc" in record else ""
        line = (
            f"{stage.name} epoch {record['epoch']}/{stage.cfg.epochs}  loss {record['loss']:.4f}  "
            f"{record['images_per_s']:.0f} img/s{acc}"
        )
        if self.live:
            self.progress.console.log(line) if acc else None
        else:
            self.console.print(line, highlight=False)

    def message(self, text: str) -> None:
        if self.live:
            self.progress.console.log(text)
        else:
            self.console.print(text, highlight=False)

    def stage_done(self, stage, final: dict[str, Any]) -> None:
        self.message(f"{stage.name} done: " + ", ".join(f"{k}={v}" for k, v in final.items()))


class SilentReporter:
    """For ranks other than 0."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def stage_started(self, *a):
        pass

    def step(self, *a):
        pass

    def epoch_done(self, *a):
        pass

    def message(self, *a):
        pass

    def stage_done(self, *a):
        pass


def make_reporter(console: Console, enabled: bool = True):
    return RichReporter(console) if enabled else SilentReporter()
