"""A pause stops everything rfqueue manages: the worker's own queue and its pools."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import rfqueue.worker.enforcer
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.enforcer import Enforcer
from tests.unit.worker.test_step import QUEUE, W1, FakeConsumer

CONTROL = "t-control"


class Consumer(FakeConsumer):
    """Celery's consumer of a worker started with ``-Q video,audio``; calls name the queue."""

    def __init__(self, *names: str) -> None:
        super().__init__(CONTROL, *names)
        self.app = SimpleNamespace(tasks={"app.encode": None, "celery.ping": None})
        self.log: list[tuple[str, str]] = []

    def add_task_queue(self, queue: str) -> None:
        self.log.append(("add", queue))
        super().add_task_queue(queue)

    def cancel_task_queue(self, queue: str) -> None:
        self.log.append(("cancel", queue))
        super().cancel_task_queue(queue)


def entry(state: State, until: float | None = None) -> Entry:
    return Entry(W1, QUEUE, state, Reason.MANUAL if until else None, time.time(), until, 1)


@pytest.fixture
def enforcer(table: FailureTable) -> Iterator[Enforcer]:
    enforcer = Enforcer(Settings(namespace="t", heartbeat_interval=0.5), W1, Snapshot(table))
    consumer = Consumer("video", "audio")
    enforcer.consumer = consumer
    enforcer._observe_pools(consumer, trusted=True)
    yield enforcer


def consumer_of(enforcer: Enforcer) -> Consumer:
    assert isinstance(enforcer.consumer, Consumer)
    return enforcer.consumer


def test_pools_are_the_queues_besides_its_own_and_the_control_queue(enforcer: Enforcer) -> None:
    assert enforcer.service.pools == ("audio", "video")
    assert enforcer.info()["pools"] == ["audio", "video"]


def test_a_pause_cancels_its_own_queue_first_then_its_pools(enforcer: Enforcer) -> None:
    consumer = consumer_of(enforcer)
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    assert consumer.log == [("cancel", QUEUE), ("cancel", "audio"), ("cancel", "video")]
    assert consumer.names == {CONTROL}  # never the control queue


def test_the_end_of_a_pause_adds_the_pools_first_then_its_own(enforcer: Enforcer) -> None:
    consumer = consumer_of(enforcer)
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    consumer.log.clear()
    enforcer.entry = entry(State.UP)
    enforcer._reconcile()
    assert consumer.log == [("add", "audio"), ("add", "video"), ("add", QUEUE)]
    assert enforcer.service.pools == ("audio", "video")


def test_a_pool_added_at_run_time_is_reported_at_once(enforcer: Enforcer) -> None:
    enforcer.entry = entry(State.UP)
    consumer_of(enforcer).names.add("thumbs")  # add_consumer thumbs
    enforcer._reconcile()
    assert enforcer.service.pools == ("audio", "thumbs", "video")


def test_a_pool_cancelled_at_run_time_counts_once_it_stays_gone(
    enforcer: Enforcer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(rfqueue.worker.enforcer.time, "monotonic", lambda: now[0])
    enforcer.entry = entry(State.UP)
    consumer_of(enforcer).names.discard("audio")  # cancel_consumer audio, by the user
    enforcer._reconcile()
    assert enforcer.service.pools == ("audio", "video")  # maybe remote control ahead of us
    now[0] += 0.5
    enforcer._reconcile()
    assert enforcer.service.pools == ("video",)


def test_remote_control_ahead_of_the_table_never_drops_a_pool(enforcer: Enforcer) -> None:
    # Given chaos's broadcasts cancelling the worker's own queue, then audio, processed
    # before the worker's view of the table says it is paused
    consumer = consumer_of(enforcer)
    enforcer.entry = entry(State.UP)
    consumer.names -= {QUEUE, "audio"}
    enforcer._reconcile()  # re-adds (the old view); the pause reaches it a moment later
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    # Then its pools are still both, for when the pause ends
    assert enforcer.service.pools == ("audio", "video")
    assert consumer.names == {CONTROL}


def test_nothing_is_learnt_while_paused(enforcer: Enforcer) -> None:
    enforcer.entry = entry(State.PAUSED, time.time() + 60)
    enforcer._reconcile()
    consumer_of(enforcer).names.add(QUEUE)  # remote add_consumer of its own queue only
    enforcer._reconcile()
    assert enforcer.service.pools == ("audio", "video")


def test_attach_registers_the_pools_and_tasks(table: FailureTable) -> None:
    # Given a worker started with -Q video,audio
    enforcer = Enforcer(Settings(namespace="t"), W1, Snapshot(table))
    try:
        enforcer.attach(Consumer("video", "audio"))
        # Then its entry names its pools and its task set
        e = table.entries()[W1]
        assert e.pools == ("audio", "video")
        assert table.task_set(e.tasks or "") == {"app.encode", "celery.ping"}
    finally:
        enforcer.shutdown()
        enforcer.snapshot.stop()


def test_a_worker_starting_paused_cancels_its_pools_too(table: FailureTable) -> None:
    # Given a pause that outlives a restart
    table.register(W1, QUEUE)
    table.pause(W1, 60, Reason.MANUAL)
    enforcer = Enforcer(Settings(namespace="t"), W1, Snapshot(table))
    consumer = Consumer("video")
    try:
        enforcer.attach(consumer)
        assert consumer.log == [("cancel", QUEUE), ("cancel", "video")]
        assert table.entries()[W1].pools == ("video",)
    finally:
        enforcer.shutdown()
        enforcer.snapshot.stop()
