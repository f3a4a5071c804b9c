"""Priorities on RabbitMQ: a worker's own queue is a priority queue when its pool's is.

The app's pool queue (``celery``) is declared with ``x-max-priority``; the worker's
dedicated queue stands in for it, so it must be declared with the same arguments by the
worker and by every producer (RabbitMQ refuses a second declaration with other ones),
and ``priority=`` must order what waits in it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Exchange, Queue

import rfqueue
from rfqueue.demo.fleet import RedisServer, wait_for
from rfqueue.settings import Settings
from rfqueue.table.registry import snapshot_for

#: Celery's start_worker sets up logging for a worker: undone after each test
pytestmark = pytest.mark.usefixtures("restore_logging")

PRIORITIES = [1, 5, 9, 3, 7, 0]
STARTED, RELEASE = threading.Event(), threading.Event()
#: what the worker ran, in order
ran: list[Any] = []


@pytest.fixture
def app(
    amqp_url: str, redis_server: RedisServer, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Celery]:
    """A user's app on RabbitMQ whose default queue is a priority queue; the table in Redis."""
    # Celery's broker_url gives way to CELERY_BROKER_URL, which the session points at Redis
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    app = Celery("prio", broker=amqp_url, set_as_current=False)
    app.conf.update(rfqueue.recommended_config(amqp_url), task_ignore_result=True)
    app.conf.task_queues = [
        Queue("celery", Exchange("celery"), "celery", queue_arguments={"x-max-priority": 10})
    ]
    # round_robin: a push policy, into the worker's own queue (`pull` uses the pool's queue)
    rfqueue.install(app, namespace="prio", redis_url=redis_server.url, policy="round_robin")

    @app.task(name="prio.block", shared=False)
    def block() -> None:
        STARTED.set()
        RELEASE.wait(10)
        ran.append("block")

    @app.task(name="prio.mark", shared=False)
    def mark(n: int) -> None:
        ran.append(n)

    STARTED.clear()
    RELEASE.clear()
    ran.clear()
    yield app
    RELEASE.set()
    app.close()


def waiting(app: Celery, queue: str) -> int:
    with app.connection_for_write() as conn:
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)


def test_priority_is_honoured_through_a_dedicated_queue(app: Celery) -> None:
    assert app.connection_for_write().transport_cls == "amqp"
    with start_worker(app, perform_ping_check=False, shutdown_timeout=30) as worker:
        own = f"rfqueue.{worker.hostname}"
        routing = snapshot_for(Settings.load(app.conf))
        wait_for(lambda: own in routing.up_queues, 10, what="the router to see the worker")
        # Given the worker busy with one task (it prefetches nothing more)
        app.tasks["prio.block"].delay()
        assert STARTED.wait(10)
        # When tasks of mixed priorities wait in its own queue
        for n in PRIORITIES:
            app.tasks["prio.mark"].apply_async((n,), priority=n)
        wait_for(lambda: waiting(app, own) == len(PRIORITIES), 10, what="the tasks to wait")
        RELEASE.set()
        # Then it runs them highest priority first
        wait_for(lambda: len(ran) == 1 + len(PRIORITIES), 10, what="every task to run")
    expected = ["block", *sorted(PRIORITIES, reverse=True)]
    assert ran == expected
