"""A reconnecting worker takes back its unacked tasks, except those its pool is running.

``Rescuer.reclaim`` runs on kombu's real Redis layout (kombu on fakeredis), and
``running_delivery_tags`` reads Celery's own ``active_requests``, filled here with real
Celery requests built from messages kombu delivered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from celery.worker import state
from celery.worker.request import Request

from rfqueue.brokers.redis import RedisBroker
from rfqueue.table import FailureTable
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.rescue import Rescuer
from rfqueue.worker.step import running_delivery_tags
from tests.unit.kombu_fakes import TASK, Broker, kombu_broker

OWN, OTHER = "rfqueue.w1@h", "rfqueue.w2@h"


def record(queue: str, n: int) -> None:
    """The task the messages name; it never runs here."""


@pytest.fixture
def broker(server: fakeredis.FakeServer) -> Iterator[Broker]:
    with kombu_broker(server) as b:
        b.app.task(name=TASK)(record)
        yield b


def make_rescuer(table: FailureTable, client: Any) -> Rescuer:
    snapshot = Snapshot(table, refresh_interval=0.5, heartbeat_timeout=5.0)
    return Rescuer(snapshot, RedisBroker(client), lambda queues: queues[0], 5.0)


@pytest.fixture
def rescuer(table: FailureTable, client: Any) -> Rescuer:
    return make_rescuer(table, client)


@pytest.fixture
def active() -> Iterator[list[Any]]:
    """Objects to put in Celery's ``active_requests`` (a WeakSet: this list keeps them)."""
    assert not state.active_requests, "another test left requests in active_requests"
    kept: list[Any] = []
    yield kept
    for request in kept:
        state.active_requests.discard(request)


def unacked_ids(client: Any) -> dict[str, str]:
    """Task id of each unacked entry, by delivery tag."""
    return {
        tag: json.loads(raw)[0]["headers"]["id"] for tag, raw in client.hgetall("unacked").items()
    }


def run(active: list[Any], broker: Broker, message: Any) -> None:
    """The pool runs ``message``: Celery's request for it is in ``active_requests``."""
    request = Request(message, app=broker.app)
    active.append(request)
    state.active_requests.add(request)


# -- reclaim -----------------------------------------------------------------------------


def test_reclaim_takes_back_own_unacked_tasks_except_the_held_ones(
    broker: Broker, rescuer: Rescuer, client: Any
) -> None:
    # Given 3 tasks of this worker delivered and unacked; its pool still runs the second
    sent = broker.send(OWN, 3)
    taken = broker.take(OWN, 3)
    running = taken[1]
    # When the worker reconnects and reclaims, holding that one's delivery tag
    rescuer.reclaim(OWN, held={running.delivery_tag})
    # Then the other two wait in its own queue again, redelivered, and the held one stays unacked
    back = broker.consume(OWN)
    assert sorted(m.headers["id"] for m in back) == sorted([sent[0], sent[2]])
    assert all(m.headers["redelivered"] is True for m in back)
    assert unacked_ids(client) == {running.delivery_tag: sent[1]}
    assert client.zrange("unacked_index", 0, -1) == [running.delivery_tag]


def test_reclaim_leaves_other_queues_unacked_tasks_alone(
    broker: Broker, rescuer: Rescuer, client: Any
) -> None:
    # Given unacked tasks of this worker and of another worker
    [own] = broker.send(OWN, 1)
    others = broker.send(OTHER, 2)
    broker.take(OWN, 1)
    taken_by_other = broker.take(OTHER, 2)
    # When this worker reclaims with nothing running
    rescuer.reclaim(OWN, held=set())
    # Then only its own task went back, to its own queue; the other's stay unacked
    assert broker.consume_ids(OWN) == [own]
    assert client.llen(OTHER) == 0
    assert unacked_ids(client) == {m.delivery_tag: m.headers["id"] for m in taken_by_other}
    assert sorted(unacked_ids(client).values()) == sorted(others)


def test_reclaim_logs_what_it_took_back(
    broker: Broker, rescuer: Rescuer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two unacked tasks of this worker
    broker.send(OWN, 2)
    broker.take(OWN, 2)
    # When it reclaims
    with caplog.at_level(logging.INFO, logger="rfqueue.worker.rescue"):
        rescuer.reclaim(OWN)
    # Then one line says how many came back, and to which queue
    assert [r.getMessage() for r in caplog.records] == [
        f"rfqueue: took back 2 unacked tasks of {OWN}"
    ]


def test_reclaim_with_redis_away_logs_and_does_not_raise(
    table: FailureTable, server: fakeredis.FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a rescuer whose Redis has gone away
    away = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    away.connection_pool.connection_kwargs["server"].connected = False
    rescuer = make_rescuer(table, away)
    # When it reclaims
    with caplog.at_level(logging.WARNING, logger="rfqueue.worker.rescue"):
        rescuer.reclaim(OWN, held=set())
    # Then a warning names the failure, and nothing is raised
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("rfqueue: could not take back unacked tasks: ")


# -- running_delivery_tags ---------------------------------------------------------------


def test_running_delivery_tags_are_those_of_celerys_active_requests(
    broker: Broker, active: list[Any]
) -> None:
    # Given two delivered tasks that the pool runs (Celery's requests in active_requests)
    broker.send(OWN, 3)
    first, second, _reserved = broker.take(OWN, 3)
    run(active, broker, first)
    run(active, broker, second)
    # When the running delivery tags are read
    tags = running_delivery_tags()
    # Then they are exactly those two messages' tags (the third is not running)
    assert tags == {first.delivery_tag, second.delivery_tag}


def test_running_delivery_tags_ignore_objects_without_a_message(active: list[Any]) -> None:
    # Given active requests without a message, or with one that has no usable tag, and one good
    class FakeRequest:
        def __init__(self, **attrs: Any) -> None:
            self.__dict__.update(attrs)

    good = FakeRequest(message=SimpleNamespace(delivery_tag="tag-1"))
    odd = [
        FakeRequest(),
        FakeRequest(message=None),
        FakeRequest(message=SimpleNamespace()),
        FakeRequest(message=SimpleNamespace(delivery_tag=None)),
        FakeRequest(message=SimpleNamespace(delivery_tag=7)),
    ]
    for request in [good, *odd]:
        active.append(request)
        state.active_requests.add(request)
    # When the running delivery tags are read
    tags = running_delivery_tags()
    # Then only the good one's tag is there, and nothing raised
    assert tags == {"tag-1"}


def test_no_active_request_means_no_tag(active: list[Any]) -> None:
    # Given a worker whose pool runs nothing
    # When the running delivery tags are read
    tags = running_delivery_tags()
    # Then there are none
    assert tags == set()


def test_a_finished_request_is_no_longer_running(broker: Broker, active: list[Any]) -> None:
    # Given a task the pool ran, whose request Celery then let go
    broker.send(OWN, 1)
    [message] = broker.take(OWN, 1)
    run(active, broker, message)
    assert running_delivery_tags() == {message.delivery_tag}
    # When the request is gone from active_requests (the task finished)
    state.active_requests.discard(active.pop())
    # Then its tag is no longer running
    assert running_delivery_tags() == set()


def test_reclaim_keeps_what_the_pool_runs_after_a_reconnect(
    broker: Broker, rescuer: Rescuer, client: Any, active: list[Any]
) -> None:
    # Given 3 delivered tasks: the pool runs one, the other two were dropped by Celery
    sent = broker.send(OWN, 3)
    running, *dropped = broker.take(OWN, 3)
    run(active, broker, running)
    # When the consumer reconnects and reclaims what its pool does not run
    rescuer.reclaim(OWN, held=running_delivery_tags())
    # Then the dropped two wait again and the running one stays unacked, not run twice
    assert sorted(broker.consume_ids(OWN)) == sorted(m.headers["id"] for m in dropped)
    assert unacked_ids(client) == {running.delivery_tag: sent[0]}


def test_a_leaving_worker_hands_back_to_another_worker_s_own_queue(
    broker: Broker, table: FailureTable, client: Any
) -> None:
    # Given w1 (leaving) and w2 up, and a policy that would send to the pool's queue (pull)
    for worker, queue in (("w1@h", OWN), ("w2@h", OTHER)):
        table.register(worker, queue)
    snapshot = Snapshot(table, refresh_interval=0.5, heartbeat_timeout=5.0)
    snapshot.refresh()

    def pull(queues: Any, pool: str = "", whole: bool = False) -> str:
        return pool if whole else str(queues[0])

    rescuer = Rescuer(snapshot, RedisBroker(client), pull, 5.0)
    sent = broker.send(OWN, 2)
    broker.take(OWN, 2)
    # When w1, stopping, hands back what it took but will not start
    rescuer.reclaim(OWN, held=set(), leaving=True)
    # Then both wait in w2's own queue: not in the pool's queue, where w1's last blocked
    # read could still take them, nor in w1's
    assert sorted(broker.consume_ids(OTHER)) == sorted(sent)
    assert client.llen("celery") == 0 and client.llen(OWN) == 0
    assert unacked_ids(client) == {}
