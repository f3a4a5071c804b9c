"""``pull``, the default: a task goes to its pool's queue when every up worker of the pool
has it; otherwise its workers take turns through their own queues."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from rfqueue.routing.policies import create_policy
from rfqueue.routing.policies.pull import PullPolicy
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.service import Service
from rfqueue.worker.choosers import policy_chooser
from tests.unit.routing.test_router_pools import (
    P1,
    P2,
    V1,
    V2,
    fleet,  # noqa: F401  (the fixture)
    fresh,
    make_app,
    q,
    queues,
    route,
    router,
)

pytestmark = pytest.mark.usefixtures("use_fake_redis")


@pytest.fixture
def app(fleet: FailureTable) -> Iterator[Celery]:  # noqa: F811
    app = make_app(policy="pull")
    yield app
    router(app).snapshot.stop()


def test_pull_is_the_default() -> None:
    assert isinstance(create_policy(Settings()), PullPolicy)


def test_a_task_every_up_worker_of_the_pool_has_goes_to_the_pool_queue(app: Celery) -> None:
    assert queues(app, "app.plain") == {"celery": 12}
    assert queues(app, "app.v") == {"video": 12}
    assert queues(app, "celery.ping", queue="video") == {"video": 12}


def test_the_pool_queue_message_carries_its_pool(app: Celery) -> None:
    assert route(app, "app.v")["headers"] == {"rfqueue-pool": "video"}


def test_a_task_only_some_workers_have_takes_turns_among_those(
    app: Celery,
    fleet: FailureTable,  # noqa: F811
) -> None:
    # p2 lacks app.t: the celery queue would hand it to p2, which would drop it
    assert queues(app, "app.t") == {q(P1): 12}
    # When p2 restarts with app.t, every up worker of celery has it
    fleet.register(P2, q(P2), Service.of(["celery"], ["app.t", "app.plain"]))
    assert queues(fresh(app), "app.t") == {"celery": 12}


def test_a_paused_worker_that_lacks_the_task_no_longer_keeps_it_off_the_pool(
    app: Celery,
    fleet: FailureTable,  # noqa: F811
) -> None:
    # Given p2, which lacks app.t, paused: every up worker of celery has app.t
    fleet.pause(P2, 60, Reason.MANUAL)
    # Then app.t goes to the pool queue, which p2 no longer consumes
    assert queues(fresh(app), "app.t") == {"celery": 12}


def test_with_no_worker_up_it_spreads_over_the_registered_workers_queues(
    app: Celery,
    fleet: FailureTable,  # noqa: F811
) -> None:
    # The pool queue would be consumed by nobody: push to the registered workers' queues
    for worker in (V1, V2):
        fleet.pause(worker, 60, Reason.MANUAL)
    assert queues(fresh(app), "app.v") == {q(V1): 6, q(V2): 6}


def test_the_rescue_sends_a_message_back_to_its_pool_queue() -> None:
    choose = policy_chooser(PullPolicy(Settings()))
    assert choose(["rfqueue.a", "rfqueue.b"], "video", True) == "video"
    assert [choose(["rfqueue.a", "rfqueue.b"], "video", False) for _ in range(2)] == [
        "rfqueue.a",
        "rfqueue.b",
    ]
