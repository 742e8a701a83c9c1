"""A screen that follows one or more run directories from a thread worker."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.screen import ModalScreen, Screen
from textual.worker import get_current_worker

from idmm_tui.tui.messages import RunPolled
from idmm_tui.tui.tailer import RunWatcher

if TYPE_CHECKING:
    from idmm_tui.tui.app import IdmmApp


class WatchingScreen(Screen):
    """Polls its runs' directories every ``app.tail_interval`` while it is visible.

    The worker only reads files and posts :class:`RunPolled` messages; the screen's handler
    updates the widgets on the UI thread.
    """

    app: IdmmApp

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
            self._wake.wait(self.app.tail_interval)
            self._wake.clear()
