"""The worker's outcome counters: shared with forked pool processes, taken per beat."""

from __future__ import annotations

import os

from celery import signals

from rfqueue.table.outliers import Outcomes
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
