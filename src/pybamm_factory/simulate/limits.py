"""A per-sample budget of CPU seconds, so one cell the solver crawls on cannot hold a run.

The budget counts the worker process's CPU time (user + system), not wall time, so a
sample's fate does not depend on how many workers share the cores. On the main thread of
a worker (the local process pool, or ``--workers 1``) an interval timer raises
:class:`SampleTimeLimit` inside a running solve: the IDAKLU solver checks Python's signal
handlers while it integrates. Off the main thread (a Dask worker's task thread) signals
cannot be used; the aging engine then checks the budget between solves instead. Either
way, a failure that happens once the budget is spent is reported as the budget's.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time


class SampleTimeLimit(Exception):
    """The sample used up its CPU-time budget."""


class CpuBudget:
    """``seconds`` of process CPU time from now (``None``: no limit)."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._deadline = None if seconds is None else time.process_time() + float(seconds)

    def spent(self) -> bool:
        return self._deadline is not None and time.process_time() > self._deadline

    def check(self) -> None:
        """Raise :class:`SampleTimeLimit` once the budget is spent."""
        if self.spent():
            raise SampleTimeLimit(self.message())

    def message(self) -> str:
        return f"CPU-time limit of {self.seconds:g} s per sample reached (aging.sample_cpu_limit_s)"

    @contextlib.contextmanager
    def interrupting(self):
        """Within this block a spent budget interrupts a running solve (main thread only)."""
        if self.seconds is None or threading.current_thread() is not threading.main_thread():
            yield self
            return

        def _raise(signum, frame):
            raise SampleTimeLimit(self.message())

        previous = signal.signal(signal.SIGPROF, _raise)
        # then again every quarter CPU-second: a solver can turn the exception raised in
        # it into its own error (IDAKLU reports IDA_ERR_FAIL), or library code can swallow
        # it; the engine reads a spent budget behind any failure as the budget's
        signal.setitimer(signal.ITIMER_PROF, max(float(self.seconds), 1e-3), 0.25)
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
