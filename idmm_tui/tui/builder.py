"""One background thread that runs the plots' drawing jobs, newest job per plot only (no Textual).

A plot submits a job each time its data or size changes; while a job waits, a newer one from the
same plot replaces it (so a busy dashboard coalesces consecutive updates into one drawing), and
jobs of different plots run in the order they were first submitted. A job posts its own result
(a message to its plot): the UI thread only paints.

One thread, not one per plot: on a 2-core machine more threads would only take turns at the GIL
with the UI thread. Measured with ``scripts/bench_tui_plot.py``.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable

Job = Callable[[], None]


class JobQueue:
    """A daemon thread running submitted jobs; a job replaces the waiting job of the same owner."""

    def __init__(self, name: str = "idmm-canvas") -> None:
        self._name = name
        self._jobs: dict[Hashable, tuple[contextvars.Context, Job]] = {}
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.done = 0  # jobs run (for tests)
        self.replaced = 0  # jobs dropped for a newer one of the same owner

    def submit(self, owner: Hashable, job: Job) -> None:
        """Run ``job`` soon in the worker thread (in the caller's context: Textual's active app)."""
        with self._ready:
            if owner in self._jobs:
                self.replaced += 1
            self._jobs[owner] = (contextvars.copy_context(), job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._ready.notify()

    def pending(self) -> int:
        with self._ready:
            return len(self._jobs)

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                owner = next(iter(self._jobs))
                context, job = self._jobs.pop(owner)
            try:
                context.run(job)
            except Exception:  # a job reports its own errors; one that escapes must not stop the thread
                pass
            self.done += 1


#: The dashboard's drawing thread (shared by every plot of every screen).
CANVAS_JOBS = JobQueue()
