"""A screen that follows one or more run directories from a thread worker."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

from textual import work
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from idmm_tui.tui.messages import RunChanged, RunsPolled
from idmm_tui.tui.screens.base import DashboardScreen
from idmm_tui.tui.tailer import RunPoll, RunWatcher
from idmm_tui.tui.widgets.curves import CurvePlot

#: Seconds a long run's older records wait at most for the first picture of its end to be painted.
BACKFILL_DELAY = 1.0
#: Seconds between two older chunks of a long run being read (the UI thread applies each one).
BACKFILL_PAUSE = 0.02


class WatchingScreen(DashboardScreen):
    """Polls its runs' directories every ``tail_interval`` while it is visible.

    The worker only reads files and posts one :class:`RunsPolled` message per poll; the screen's
    :meth:`apply_polls` updates the widgets on the UI thread. While the UI has not handled a message,
    the worker keeps polling and the next message carries every poll since (one redraw for several).

    The first poll starts when the screen is created, in a thread of its own, while the UI thread
    composes and lays out the screen: a subclass's ``on_mount`` takes it with :meth:`take_first_polls`
    when it is already read (the plots then have their lines before their first layout), else the
    worker posts it. A long run's older records are read once a plot has painted its end
    (:class:`CurvePlot.Painted`), or after ``BACKFILL_DELAY``: they never compete with the first curve.
    """

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = [Path(p) for p in paths]
        self._wake = threading.Event()
        self._handled = threading.Event()  # the last RunsPolled was handled: the worker may post the next
        self._handled.set()
        self._painted = threading.Event()  # a plot painted its first picture
        self._first: Future[tuple[list[RunWatcher], list[RunPoll]]] = Future()
        self._first_lock = threading.Lock()
        self._first_taken = False
        threading.Thread(target=self._first_poll, name="idmm-first-poll", daemon=True).start()

    def _first_poll(self) -> None:
        try:
            watchers = [RunWatcher(p) for p in self.paths]
            self._first.set_result((watchers, [watcher.poll() for watcher in watchers]))
        except BaseException as exc:  # the worker polls again (and reports a real error then)
            self._first.set_exception(exc)

    def take_first_polls(self) -> list[RunPoll] | None:
        """The first polls if they are read and nobody took them yet (once: then the worker skips them)."""
        with self._first_lock:
            if self._first_taken or not self._first.done() or self._first.exception() is not None:
                return None
            self._first_taken = True
            return self._first.result()[1]

    def start_watching(self) -> None:
        self._watch_loop()

    def poll_now(self) -> None:
        self._wake.set()

    def on_screen_resume(self) -> None:
        self._wake.set()

    def on_unmount(self) -> None:
        self._wake.set()  # the watch worker, cancelled, stops waiting
        self._painted.set()

    def on_curve_plot_painted(self, message: CurvePlot.Painted) -> None:
        self._painted.set()

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
        try:
            watchers, polls = self._first.result()
        except Exception:
            watchers = [RunWatcher(p) for p in self.paths]
            polls = first_polls = [watcher.poll() for watcher in watchers]
        else:
            first_polls = self.take_first_polls() or []  # []: on_mount has shown them
        first_backfilling = any(poll.backfilling for poll in polls)
        first = True
        pending: list[RunPoll] = []
        while not worker.is_cancelled:
            backfilling = False
            if first:
                backfilling = first_backfilling
                pending += first_polls
            elif self._visible():
                polls = [watcher.poll() for watcher in watchers]
                backfilling = any(poll.backfilling for poll in polls)
                pending += [poll for poll in polls if not poll.empty]
            if pending and self._handled.is_set():  # else the UI is busy: the next message carries both
                self._handled.clear()
                self.post_message(RunsPolled(pending))
                pending = []
            if first and backfilling:
                # the end of a long run is painted before its older records are read (and parsed)
                self._painted.wait(BACKFILL_DELAY)
                self._wake.clear()  # (the screen's first resume wakes the worker: not a reason to hurry)
                wait = 0.0
            elif backfilling or pending:
                wait = BACKFILL_PAUSE  # older records are read without waiting for the next poll
            else:
                wait = self.dashboard.tail_interval
            first = False
            if wait:
                self._wake.wait(wait)
            self._wake.clear()
