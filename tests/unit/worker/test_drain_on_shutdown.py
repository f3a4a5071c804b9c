"""A worker's shutdown drains it: draining at once, beats until the exit, then down."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery import bootsteps

from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.enforcer import Enforcer
from rfqueue.worker.step import RfqueueStep, started_delivery_tags
from tests.unit.worker.test_step import QUEUE, W1, FakeConsumer


class LoopConsumer(FakeConsumer):
    """Runs what is scheduled in the event loop at once."""

    def call_soon(self, callback: Any) -> None:
        callback()


@pytest.fixture
def enforcer(table: FailureTable) -> Enforcer:
    enforcer = Enforcer(Settings(namespace="t"), W1, Snapshot(table))
    enforcer.consumer = LoopConsumer("video")
    enforcer.service = enforcer.service.of(("video",), ())
    table.register(W1, QUEUE)
    return enforcer


def test_a_shutdown_drains_cancels_and_keeps_beating(
    enforcer: Enforcer, table: FailureTable, clock: Any
) -> None:
    # When the shutdown begins (from the signal handler) and the thread runs its round
    enforcer.begin_drain()
    enforcer._round()
    # Then the table says draining (until the worker stops), and every queue is cancelled
    entry = table.entries()[W1]
    assert (entry.state, entry.reason, entry.until) == (State.DRAINING, Reason.SHUTDOWN, None)
    assert enforcer.consumer.names == set()
    # And later rounds beat without writing the drain again: it stays draining
    clock.advance(2)
    enforcer._round()
    entry = table.entries()[W1]
    assert (entry.state, entry.heartbeat) == (State.DRAINING, clock.now)
    assert [e.action for e in table.events(10)].count("drain") == 1
    # When it exits, it is down
    enforcer.shutdown()
    assert table.entries()[W1].state is State.DOWN


def test_an_operator_drain_cancels_the_consumers(enforcer: Enforcer, table: FailureTable) -> None:
    table.drain(W1, Reason.MANUAL, seconds=60)
    enforcer._round()
    assert enforcer.consumer.names == set()


class StepStub:
    """What RfqueueStep.stop reads of Celery's consumer: its blueprint's state."""

    def __init__(self, state: int) -> None:
        self.blueprint = SimpleNamespace(state=state)


@pytest.mark.parametrize(
    ("state", "drains"),
    [(bootsteps.RUN, False), (bootsteps.CLOSE, True), (bootsteps.TERMINATE, True)],
)
def test_the_step_drains_when_the_consumer_stops_for_good(state: int, drains: bool) -> None:
    # A reconnect restarts the steps while the blueprint runs; a shutdown closes it first.
    calls: list[Any] = []
    step = SimpleNamespace(
        enforcer=SimpleNamespace(begin_drain=lambda: calls.append("drain"), queue=QUEUE),
        rescuer=SimpleNamespace(reclaim=lambda *args, **kw: calls.append((args, kw))),
        broker=SimpleNamespace(consumer_leaving=lambda c: calls.append("unblock")),
    )
    RfqueueStep.stop(step, StepStub(state))  # type: ignore[arg-type]
    # Then it drains, ends its last blocked read, and hands what it took but will not
    # start to up workers
    handed_back = ((QUEUE, set()), {"leaving": True})
    assert calls == (["drain", "unblock", handed_back] if drains else [])


def test_only_what_the_pool_never_got_is_handed_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.worker import state

    def request(tag: str, handed: bool) -> SimpleNamespace:
        answer = (lambda: "pool's result") if handed else None
        return SimpleNamespace(message=SimpleNamespace(delivery_tag=tag), _apply_result=answer)

    running, sent, waiting = request("run", True), request("sent", True), request("eta", False)
    monkeypatch.setattr(state, "active_requests", [running])
    monkeypatch.setattr(state, "reserved_requests", [running, sent, waiting])
    # The running task and the one handed to the pool stay; the one waiting (an ETA, or
    # for a free process) is not among them
    assert started_delivery_tags() == {"run", "sent"}
