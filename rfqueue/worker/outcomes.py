"""Task outcomes counted where Celery reports them, for the heartbeat to carry.

Celery sends ``task_success`` and ``task_failure`` (a raised exception, a soft time limit)
in the process that ran the task, a prefork pool's child; a hard time limit and a lost
pool process (``WorkerLostError``) arrive as ``task_failure`` in the worker's main
process. So the counters live in shared memory made before the pool forks, and each
outcome costs one lock and three integer writes. The enforcer in the main process
takes the difference since its last beat (:meth:`OutcomeCounter.take`). A retry caused
by an error (``autoretry_for``, ``self.retry(exc=...)``) is a failed attempt: a host with
a full disk whose tasks all retry is the gray failure to find, and with the shared queue
it would take each retry back at once. A bare ``self.retry()`` ("not yet"), revocations
and rejections are not outcomes: they say nothing of the worker's health.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from celery import signals

from rfqueue.table.outliers import Outcomes

SUCCESSES, FAILURES, STREAK = 0, 1, 2


class OutcomeCounter:
    """Successes, failures and the failures in a row, shared by a worker and its pool."""

    def __init__(self, nodename: str | None = None) -> None:
        #: the worker whose tasks count; None: every task this process runs
        self.nodename = nodename
        # fork, the pool's start method here, shares these pages with every child
        self._lock = multiprocessing.Lock()
        self._counts = multiprocessing.RawArray("q", 3)
        #: totals as of the last beat that reached the table
        self._sent = (0, 0)

    def record(self, failed: bool) -> None:
        # A child killed while it holds the lock must not freeze everyone: skip instead.
        if not self._lock.acquire(timeout=0.1):
            return
        try:
            if failed:
                self._counts[FAILURES] += 1
                self._counts[STREAK] += 1
            else:
                self._counts[SUCCESSES] += 1
                self._counts[STREAK] = 0
        finally:
            self._lock.release()

    def peek(self) -> Outcomes:
        """What finished since the last :meth:`sent`; the streak as it stands."""
        successes, failures, streak = self._counts[:]
        return Outcomes(successes - self._sent[0], failures - self._sent[1], streak)

    def sent(self, outcomes: Outcomes) -> None:
        """``outcomes`` (from :meth:`peek`) reached the table: count from there on."""
        self._sent = (self._sent[0] + outcomes.successes, self._sent[1] + outcomes.failures)

    def connect(self) -> None:
        """Count every task of this process and, after the fork, of its pool's children."""
        signals.task_success.connect(self._on_success, weak=False)
        signals.task_failure.connect(self._on_failure, weak=False)
        signals.task_retry.connect(self._on_retry, weak=False)

    def disconnect(self) -> None:
        signals.task_success.disconnect(self._on_success)
        signals.task_failure.disconnect(self._on_failure)
        signals.task_retry.disconnect(self._on_retry)

    def _on_success(self, sender: Any = None, **_: Any) -> None:
        if self._is_mine(sender):
            self.record(False)

    def _on_failure(self, sender: Any = None, **_: Any) -> None:
        if self._is_mine(sender):
            self.record(True)

    def _on_retry(self, sender: Any = None, reason: Any = None, request: Any = None,
                  **_: Any) -> None:  # fmt: skip
        # ``reason`` is Celery's Retry; its ``exc`` the error that caused it, if any.
        if getattr(reason, "exc", None) is not None and self._is_mine(sender, request):
            self.record(True)

    def _is_mine(self, task: Any, request: Any = None) -> bool:
        """A task of this worker (several can share a process in tests), not rfqueue's own.

        rfqueue's own tasks (the chaos tick) say nothing about the worker's health. A
        failure the main process reports (a time limit, a lost pool process) carries no
        request: it is this process's worker's.
        """
        if str(getattr(task, "name", "")).startswith("rfqueue."):
            return False
        request = request or getattr(task, "request", None)
        hostname = getattr(request, "hostname", None)
        return self.nodename is None or hostname is None or hostname == self.nodename
