"""Celery's in-process test worker (``start_worker``, pytest's ``celery_worker``) with rfqueue.

``celery.contrib.testing.worker.start_worker`` builds a ``WorkController`` in a thread:
``celeryd_after_setup`` is never sent. The worker must still consume its own queue and
the control queue from its first read, and leave no entry behind when it stops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import rfqueue
from rfqueue.demo.fleet import RedisServer
from rfqueue.keys import Keys
from rfqueue.table import FailureTable

NAMESPACE = "intest"
RUNS = 20


@pytest.fixture
def app(redis_server: RedisServer, redis_client: Any) -> Iterator[Celery]:
    """A user's app with rfqueue installed, its results in the private Redis."""
    app = Celery("intest", broker=redis_server.url, backend=redis_server.url, set_as_current=False)
    app.conf.update(rfqueue.recommended_config(redis_server.url))
    # A test worker stops after kombu's blocking read times out (plain Celery): 0.1 s, not 1 s
    app.conf.broker_transport_options["polling_interval"] = 0.1
    rfqueue.install(app, namespace=NAMESPACE)

    @app.task(name="intest.add", shared=False)
    def add(a: int, b: int) -> int:
        return a + b

    yield app
    app.close()


def test_the_first_task_runs_at_once_and_the_worker_leaves_no_entry(
    app: Celery, redis_server: RedisServer
) -> None:
    table = FailureTable(redis_server.client(), NAMESPACE)
    control = Keys(NAMESPACE).control_queue
    slowest = 0.0
    for run in range(RUNS):
        with start_worker(app, perform_ping_check=False, shutdown_timeout=30) as worker:
            # The first task of a test: its .get(timeout=1) must not flake
            started = time.monotonic()
            assert app.tasks["intest.add"].delay(run, 1).get(timeout=1) == run + 1
            slowest = max(slowest, time.monotonic() - started)
            name = worker.hostname
            consumed = {q.name for q in worker.consumer.task_consumer.queues}
            assert {f"rfqueue.{name}", control} <= consumed, consumed
            assert name in table.entries()
        # Stopped: a test worker's entry is gone, not left behind as down
        assert name not in table.entries(), f"run {run}: {name} left behind"
    assert slowest < 0.5, f"the slowest first task took {slowest:.2f} s"
