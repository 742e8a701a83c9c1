"""What passes between the training loop and the process that runs it: progress and stop requests."""

from __future__ import annotations

from typing import Any, Protocol

from idmm_tui.stages import Stage


class Reporter(Protocol):
    """Receives progress for display (the CLI's progress bar; nothing in the core prints)."""

    def stage_started(self, stage: Stage, total_steps: int, done_steps: int) -> None: ...
    def step(self, stage: Stage, epoch: int, step: int, loss: float, images_per_s: float) -> None: ...
    def epoch_done(self, stage: Stage, record: dict[str, Any]) -> None: ...
    def message(self, text: str) -> None: ...
    def stage_done(self, stage: Stage, final: dict[str, Any]) -> None: ...


class NullReporter:
    """A :class:`Reporter` that shows nothing."""

    def stage_started(self, stage: Stage, total_steps: int, done_steps: int) -> None:
        pass

    def step(self, stage: Stage, epoch: int, step: int, loss: float, images_per_s: float) -> None:
        pass

    def epoch_done(self, stage: Stage, record: dict[str, Any]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def stage_done(self, stage: Stage, final: dict[str, Any]) -> None:
        pass


class StopRequest:
    """Set by a signal handler (Ctrl-C, SIGTERM from the TUI); the loop stops at the next step."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def request(self, reason: str = "interrupted") -> None:
        self.requested, self.reason = True, reason


class RunInterrupted(Exception):
    """Training stopped on request after writing a resumable checkpoint."""
