"""Celery's in-process test worker (``start_worker``, pytest's ``celery_worker``) with rfqueue.

``celery.contrib.testing.worker.start_worker`` builds a ``WorkController`` in a thread:
``celeryd_after_setup`` is never sent. The worker must still consume its own queue and
the control queue from its first read, and leave no entry behind when it stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

import rfqueue
from rfqueue.demo.fleet import RedisServer, wait_for
from rfqueue.keys import Keys
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.registry import snapshot_for

#: Celery's start_worker sets up logging for a worker: undone after each test
pytestmark = pytest.mark.usefixtures("restore_logging")

NAMESPACE = "intest"
RUNS = 20
#: set to let intest.hold finish
RELEASE = threading.Event()


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

    @app.task(name="intest.hold", shared=False)
    def hold() -> str:
        RELEASE.wait(10)
        return "held"

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
    # Before: about 1 s (the queue came with the enforcer's first pass), or the timeout.
    # 0.8 s leaves room for a loaded machine (a load of 7 on 2 cores here).
    assert slowest < 0.8, f"the slowest first task took {slowest:.2f} s"


def test_celerys_tools_show_the_workers_own_queue(app: Any) -> None:
    """What the README's "Observable routing" says: the fields name the worker's queue."""
    app.conf.result_extended = True
    app.conf.rfqueue_policy = "round_robin"  # a push policy: into the worker's own queue
    RELEASE.clear()
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False) as worker:
        name, own = worker.hostname, f"rfqueue.{worker.hostname}"
        # This process's routing copy has heard of the worker (the fixtures flush Redis
        # between tests, which a copy only notices at its next full read)
        routing = snapshot_for(Settings.load(app.conf))
        wait_for(lambda: own in routing.up_queues, 5, what="the router to see the worker")
        running = app.tasks["intest.hold"].delay()
        later = app.tasks["intest.add"].apply_async((1, 2), countdown=60)
        inspect = app.control.inspect([name], timeout=2)
        wait_for(lambda: (inspect.active() or {}).get(name), 5, what="the task to run")
        [active] = inspect.active()[name]
        assert active["delivery_info"]["routing_key"] == own
        [scheduled] = wait_for(lambda: (inspect.scheduled() or {}).get(name), 5, what="eta")
        assert scheduled["request"]["delivery_info"]["routing_key"] == own
        state, request = inspect.query_task(running.id)[name][running.id]
        assert state == "active" and request["delivery_info"]["routing_key"] == own
        consumed = {q["name"] for q in inspect.active_queues()[name]}
        assert consumed == {own, f"{NAMESPACE}-control", "celery"}
        RELEASE.set()
        assert running.get(timeout=5) == "held"
        assert app.backend.get_task_meta(running.id)["queue"] == own
        later.revoke()
