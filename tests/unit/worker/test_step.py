"""The enforcer brings a worker's consumer in line with its entry, and wakes it on resume."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.enforcer import Enforcer

W1 = "w1@h"
QUEUE = f"rfqueue.{W1}"


class FakeConsumer:
    """What the enforcer uses of Celery's consumer and its task consumer: queues consumed."""

    def __init__(self, *names: str) -> None:
        #: the names of the queues consumed
        self.names = {QUEUE, *names}
        self.task_consumer = self
        self.calls: list[str] = []

    @property
    def queues(self) -> list[SimpleNamespace]:  # kombu.Queue objects: only .name is read
        return [SimpleNamespace(name=name) for name in sorted(self.names)]

    def consuming_from(self, queue: str) -> bool:
        return queue in self.names

    def add_task_queue(self, queue: str) -> None:
        self.calls.append("add")
        self.names.add(queue)

    def cancel_task_queue(self, queue: str) -> None:
        self.calls.append("cancel")
        self.names.discard(queue)


def entry(state: State, until: float | None = None) -> Entry:
    return Entry(W1, QUEUE, state, Reason.CHAOS if until else None, time.time(), until, 1)


@pytest.fixture
def enforcer(table: FailureTable) -> Enforcer:
    enforcer = Enforcer(Settings(namespace="t"), W1, Snapshot(table))
    enforcer.consumer = FakeConsumer()
    return enforcer


def woken(enforcer: Enforcer) -> list[Any]:
    calls: list[Any] = []
    enforcer.on_resume = calls.append
    return calls


def test_a_pause_cancels_and_the_end_of_it_adds_and_wakes_once(enforcer: Enforcer) -> None:
    wakes = woken(enforcer)
    # Given a paused entry, When the enforcer reconciles
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    # Then the queue is cancelled and nobody is woken
    assert enforcer.consumer.calls == ["cancel"] and wakes == []
    # When the pause is over
    enforcer.entry = entry(State.UP)
    enforcer._reconcile()
    enforcer._reconcile()
    # Then the queue is consumed again and the blocked read woken, once
    assert enforcer.consumer.calls == ["cancel", "add"]
    assert wakes == [enforcer.consumer]


def test_a_resume_by_remote_control_still_wakes_the_read(enforcer: Enforcer) -> None:
    wakes = woken(enforcer)
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    # Given the queue re-added by remote control (add_consumer) before the enforcer ran
    enforcer.consumer.names.add(QUEUE)
    # When the enforcer sees the entry up
    enforcer.entry = entry(State.UP)
    enforcer._reconcile()
    # Then it adds nothing more, but still wakes the read that does not include it
    assert enforcer.consumer.calls == ["cancel"]
    assert wakes == [enforcer.consumer]


def test_an_up_worker_is_never_woken(enforcer: Enforcer) -> None:
    wakes = woken(enforcer)
    enforcer.entry = entry(State.UP)
    enforcer._reconcile()
    assert enforcer.consumer.calls == [] and wakes == []


@pytest.mark.parametrize("flag", ["should_stop", "should_terminate"])
def test_a_worker_shutting_down_never_takes_up_its_queue_again(
    enforcer: Enforcer, flag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.worker import state

    # Given an up worker whose consumer Celery already cancelled for a shutdown
    enforcer.entry = entry(State.UP)
    enforcer.consumer.names.clear()
    # When the enforcer reconciles after the shutdown began (a warm one sets 0, EX_OK)
    monkeypatch.setattr(state, flag, 0 if flag == "should_stop" else True)
    enforcer._reconcile()
    # Then it leaves the queue alone
    assert enforcer.consumer.calls == []
