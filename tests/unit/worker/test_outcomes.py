"""The worker's outcome counters: shared with forked pool processes, taken per beat."""

from __future__ import annotations

import os
from typing import Any

import pytest
from celery import signals

from rfqueue.settings import Settings
from rfqueue.table import FailureTable, Reason, Snapshot, State
from rfqueue.table.outliers import Outcomes
from rfqueue.worker.enforcer import Enforcer
from rfqueue.worker.outcomes import OutcomeCounter


class Task:
    """A sender as Celery's: a task with a name."""

    def __init__(self, name: str) -> None:
        self.name = name


TASK = Task("app.t")


def test_a_beat_takes_what_finished_since_the_last_beat_that_arrived() -> None:
    counter = OutcomeCounter()
    for failed in (False, True, True):
        counter.record(failed)
    first = counter.peek()
    assert first == Outcomes(successes=1, failures=2, streak=2)
    assert counter.peek() == first  # a beat that never arrived: sent again next time
    counter.sent(first)
    counter.record(True)
    assert counter.peek() == Outcomes(0, 1, 3)  # the streak reaches back
    counter.record(False)
    assert counter.peek().streak == 0


def test_signals_of_a_forked_child_count_in_the_parent() -> None:
    counter = OutcomeCounter()
    counter.connect()
    try:
        pid = os.fork()
        if pid == 0:  # the child: as a prefork pool process runs a task
            signals.task_failure.send(sender=TASK, task_id="1", exception=ValueError())
            signals.task_success.send(sender=TASK, result=1)
            signals.task_failure.send(sender=TASK, task_id="2", exception=ValueError())
            os._exit(0)
        os.waitpid(pid, 0)
        # rfqueue's own tasks (the chaos tick) are no sign of the worker's health
        signals.task_failure.send(sender=Task("rfqueue.chaos"), task_id="3")
    finally:
        counter.disconnect()
    assert counter.peek() == Outcomes(successes=1, failures=2, streak=1)


class Running(Task):
    """A task as its signals see it while a worker runs it: with its request's hostname."""

    def __init__(self, name: str, hostname: str | None) -> None:
        super().__init__(name)
        self.request = type("Request", (), {"hostname": hostname})()


def test_only_this_workers_tasks_count_when_workers_share_a_process() -> None:
    counter = OutcomeCounter("w1@h")
    counter.connect()
    try:
        signals.task_success.send(sender=Running("app.t", "w1@h"), result=1)
        signals.task_success.send(sender=Running("app.t", "w2@h"), result=1)
        # a time limit or a lost pool process, reported by the main process: no request
        signals.task_failure.send(sender=Running("app.t", None), task_id="1")
    finally:
        counter.disconnect()
    assert counter.peek() == Outcomes(successes=1, failures=1, streak=1)


def test_a_retry_for_an_error_is_a_failed_attempt_a_bare_retry_is_nothing() -> None:
    from celery.exceptions import Retry

    counter = OutcomeCounter("w1@h")
    counter.connect()
    try:
        mine = Running("app.t", "w1@h")
        # autoretry_for / self.retry(exc=...): the attempt failed on this worker
        request = mine.request
        signals.task_retry.send(sender=mine, request=request, reason=Retry(exc=OSError(28)))
        # self.retry() with no error ("not yet"): no word on the worker's health
        signals.task_retry.send(sender=mine, request=request, reason=Retry())
        # another worker's retry, in a shared process
        other = Running("app.t", "w2@h")
        signals.task_retry.send(sender=other, request=other.request, reason=Retry(exc=OSError()))
    finally:
        counter.disconnect()
    assert counter.peek() == Outcomes(successes=0, failures=1, streak=1)


def enforcer_of(table: FailureTable, worker: str, **settings: Any) -> Enforcer:
    enforcer = Enforcer(Settings(namespace="t", **settings), worker, Snapshot(table))
    enforcer._write(lambda: table.register(worker, enforcer.queue))
    return enforcer


def test_a_worker_whose_beat_says_outlier_ejects_itself_inside_the_budget(
    table: FailureTable,
) -> None:
    # Given three workers; w2 and w3 finished 20 tasks well, w1 failed its last five
    w1, w2, w3 = (enforcer_of(table, w) for w in ("w1@h", "w2@h", "w3@h"))
    for peer in (w2, w3):
        for _ in range(10):
            peer.outcomes.record(False)
        peer._write(peer._beat)
    for _ in range(5):
        w1.outcomes.record(True)
    # When w1 beats
    w1._write(w1._beat)
    # Then it is paused for the base ejection time, reason outlier, and the outcomes were sent
    assert w1.entry is not None
    assert (w1.entry.state, w1.entry.reason) == (State.PAUSED, Reason.OUTLIER)
    assert w1.entry.until == pytest.approx(table.now() + 30, abs=1)
    assert w1.outcomes.peek() == Outcomes(0, 0, 5)
    # And w2, failing as well now, is not: a pool of three ejects one at most (and
    # max_paused=1 is spent)
    for _ in range(5):
        w2.outcomes.record(True)
    w2._write(w2._beat)
    assert w2.entry is not None and w2.entry.state is State.UP
