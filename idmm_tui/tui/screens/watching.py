"""A screen that follows one or more run directories from a thread worker."""

from __future__ import annotations

import threading
from pathlib import Path

from textual import work
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from idmm_tui.tui.messages import RunChanged, RunPolled
from idmm_tui.tui.screens.base import DashboardScreen
from idmm_tui.tui.tailer import RunWatcher


class WatchingScreen(DashboardScreen):
    """Polls its runs' directories every ``tail_interval`` while it is visible.

    The worker only reads files and posts :class:`RunPolled` messages; the screen's handler
    updates the widgets on the UI thread.
    """

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths]
        self._wake = threading.Event()

    def start_watching(self) -> None:
        self._watch_loop()

    def poll_now(self) -> None:
        self._wake.set()

    def on_screen_resume(self) -> None:
        self._wake.set()

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

    @work(thread=True, exclusive=True, group="watch", exit_on_error=False)
    def _watch_loop(self) -> None:
        worker = get_current_worker()
        watchers = [RunWatcher(p) for p in self.paths]
        first = True
        while not worker.is_cancelled:
            if first or self._visible():
                for watcher in watchers:
                    poll = watcher.poll()
                    if first or not poll.empty:
                        self.post_message(RunPolled(poll))
                first = False
            self._wake.wait(self.dashboard.tail_interval)
            self._wake.clear()
