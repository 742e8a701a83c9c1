"""A screen that follows one or more run directories from a thread worker."""

from __future__ import annotations

import threading
from pathlib import Path

from textual import work
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from idmm_tui.tui.messages import RunChanged, RunsPolled
from idmm_tui.tui.screens.base import DashboardScreen
from idmm_tui.tui.tailer import RunPoll, RunWatcher

#: Seconds between the end of a long run being shown and its older records being read.
BACKFILL_DELAY = 0.3
#: Seconds between two older chunks of a long run being read (the UI thread applies each one).
BACKFILL_PAUSE = 0.02


class WatchingScreen(DashboardScreen):
    """Polls its runs' directories every ``tail_interval`` while it is visible.

    The worker only reads files and posts one :class:`RunsPolled` message per poll; the screen's
    :meth:`apply_polls` updates the widgets on the UI thread. While the UI has not handled a message,
    the worker keeps polling and the next message carries every poll since (one redraw for several).
    """

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths]
        self._wake = threading.Event()
        self._handled = threading.Event()  # the last RunsPolled was handled: the worker may post the next
        self._handled.set()

    def start_watching(self) -> None:
        self._watch_loop()

    def poll_now(self) -> None:
        self._wake.set()

    def on_screen_resume(self) -> None:
        self._wake.set()

    def on_unmount(self) -> None:
        self._wake.set()  # the watch worker, cancelled, stops waiting

    def on_run_changed(self, message: RunChanged) -> None:
        if message.path in self.paths:
            if message.returncode is None:
                self.poll_now()
            else:
                self.process_exited(message.returncode, message.output)

    def process_exited(self, returncode: int, output: Path | None) -> None:
        """The process the dashboard started for one of the runs ended."""
        self.poll_now()

    def _visible(self) -> bool:
        screen = self.app.screen
        return screen is self or (isinstance(screen, ModalScreen) and self in self.app.screen_stack)

    def on_runs_polled(self, message: RunsPolled) -> None:
        try:
            self.apply_polls(message.polls)
        finally:
            self._handled.set()

    def apply_polls(self, polls: list[RunPoll]) -> None:
        """Show what the polls found (in order; several polls of one run when the UI was busy)."""

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _watch_loop(self) -> None:
        worker = get_current_worker()
        watchers = [RunWatcher(p) for p in self.paths]
        first = True
        pending: list[RunPoll] = []
        while not worker.is_cancelled:
            backfilling = False
            if first or self._visible():
                polls = [watcher.poll() for watcher in watchers]
                backfilling = any(poll.backfilling for poll in polls)
                pending += [poll for poll in polls if first or not poll.empty]
            if pending and self._handled.is_set():  # else the UI is busy: the next message carries both
                self._handled.clear()
                self.post_message(RunsPolled(pending))
                pending = []
            if first and backfilling:
                self._wake.clear()  # (the screen's first resume wakes the worker: not a reason to hurry)
                wait = BACKFILL_DELAY  # the end of a long run is drawn before its older records are read
            elif backfilling or pending:
                wait = BACKFILL_PAUSE  # older records are read without waiting for the next poll
            else:
                wait = self.dashboard.tail_interval
            first = False
            self._wake.wait(wait)
            self._wake.clear()
