"""The router's plans (routing.plans): worked out once per pool index, never per task,
and a table change is seen by the very next route.

Each test routes first, so that the plans it then changes are cached: a cache that a
change did not invalidate would keep routing by the old table.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from rfqueue.routing import plans as plans_module
from rfqueue.routing.destination import AppRoutes
from rfqueue.routing.plans import Plans
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.pools import PoolIndex
from rfqueue.table.service import Service

P1, P2, P3, V1 = "p1@h", "p2@h", "p3@h", "v1@h"
URL = "redis://fake-table:6379/0"

pytestmark = pytest.mark.usefixtures("use_fake_redis")


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def fleet(table: FailureTable, clock: Any) -> FailureTable:
    """p1 and p2 consume the default queue; only p1 has app.t."""
    clock.now = time.time()  # the snapshot judges pauses by the real clock
    table.register(P1, q(P1), Service.of(["celery"], ["app.t", "app.plain"]))
    table.register(P2, q(P2), Service.of(["celery"], ["app.plain"]))
    return table


@pytest.fixture
def make_router(fleet: FailureTable) -> Iterator[Any]:
    made: list[Router] = []

    def make(policy: str = "round_robin", **changes: Any) -> Router:
        settings = Settings(redis_url=URL, namespace="t", policy=policy, **changes)
        router = Router(settings=settings)
        made.append(router)
        return fresh(router)

    yield make
    for router in made:
        router.snapshot.stop()


def fresh(router: Router) -> Router:
    """Bring the router's snapshot up to date now, instead of waiting for its thread."""
    assert router.snapshot.refresh()
    return router


def sent_to(router: Router, name: str, n: int = 12, **options: Any) -> Counter[str]:
    """Where ``n`` tasks go; no options at all is the router's fast path."""
    answers = [router(name, (), {}, dict(options)) for _ in range(n)]
    return Counter(answer["queue"].name if answer else "left to Celery" for answer in answers)


class TestTheNextRouteSeesTheChange:
    def test_a_worker_paused_then_resumed(self, make_router: Any, fleet: FailureTable) -> None:
        router = make_router()
        assert sent_to(router, "app.plain") == {q(P1): 6, q(P2): 6}
        fleet.pause(P1, 600, Reason.MANUAL)
        assert sent_to(fresh(router), "app.plain") == {q(P2): 12}
        fleet.resume(P1)
        assert sent_to(fresh(router), "app.plain") == {q(P1): 6, q(P2): 6}

    def test_a_worker_that_joins_the_pool(self, make_router: Any, fleet: FailureTable) -> None:
        router = make_router()
        assert sent_to(router, "app.plain", n=2) == {q(P1): 1, q(P2): 1}
        fleet.register(P3, q(P3), Service.of(["celery"], ["app.plain"]))
        assert sent_to(fresh(router), "app.plain", n=3) == {q(P1): 1, q(P2): 1, q(P3): 1}

    def test_a_pool_added(self, make_router: Any, fleet: FailureTable) -> None:
        # Given a queue no worker consumes: left to Celery
        router = make_router()
        assert sent_to(router, "app.plain", n=2, queue="video") == {"left to Celery": 2}
        # When a worker of that pool registers, the next task of the pool goes to it
        fleet.register(V1, q(V1), Service.of(["video"], ["app.plain"]))
        assert sent_to(fresh(router), "app.plain", n=2, queue="video") == {q(V1): 2}

    def test_a_task_set_changed(self, make_router: Any, fleet: FailureTable) -> None:
        router = make_router()
        assert sent_to(router, "app.t") == {q(P1): 12}
        # p2 restarts with a build that has app.t, p1 with one that lacks it
        fleet.register(P2, q(P2), Service.of(["celery"], ["app.t", "app.plain"]))
        fleet.mark_down(P1, Reason.SHUTDOWN)
        fleet.register(P1, q(P1), Service.of(["celery"], ["app.plain"]))
        assert sent_to(fresh(router), "app.t") == {q(P2): 12}

    def test_pull_leaves_the_pool_queue_once_a_worker_lacks_the_task(
        self, make_router: Any, fleet: FailureTable
    ) -> None:
        # Given every worker of the pool has app.plain: pull gives the pool's own queue
        router = make_router("pull")
        assert sent_to(router, "app.plain", n=2) == {"celery": 2}
        # When a worker without it joins, the pool queue could hand it to that worker
        fleet.register(P3, q(P3), Service.of(["celery"], ["app.other"]))
        assert sent_to(fresh(router), "app.plain", n=2) == {q(P1): 1, q(P2): 1}

    def test_the_last_up_worker_paused(self, make_router: Any, fleet: FailureTable) -> None:
        # Given only p1 has app.t, and tasks without an up worker go to a fallback queue
        router = make_router(no_worker_up="fallback", fallback_queue="fb")
        assert sent_to(router, "app.t", n=2) == {q(P1): 2}
        fleet.pause(P1, 600, Reason.MANUAL)
        assert sent_to(fresh(router), "app.t", n=2) == {"fb": 2}


class TestPlans:
    def test_routing_works_out_a_plan_once_per_index(
        self, make_router: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        worked_out: Counter[str] = Counter()
        having = PoolIndex.having

        def counted(index: PoolIndex, queues: Any, name: str) -> tuple[str, ...]:
            worked_out[name] += 1
            return having(index, queues, name)

        monkeypatch.setattr(PoolIndex, "having", counted)
        router = make_router()
        sent_to(router, "app.plain", n=50)
        sent_to(router, "app.plain", n=50, queue="celery", priority=3)
        assert worked_out == {"app.plain": 1}

    def test_the_cache_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(plans_module, "MAX_PLANS", 3)
        index = PoolIndex(up={"celery": (q(P1),)}, registered={"celery": (q(P1),)})
        plans = Plans(index, AppRoutes(), "rfqueue.")
        first = plans.default("task0")
        assert plans.of("celery", "task0") is first
        for i in range(1, 5):
            plans.default(f"task{i}")
        # the cache started afresh: the first plan is worked out again, equal but new
        again = plans.of("celery", "task0")
        assert again is not first and again.queues == first.queues == (q(P1),)
        assert len(plans.by_default) <= 3

    def test_a_worker_queue_is_no_pool(self) -> None:
        index = PoolIndex(up={q(P1): (q(P1),)}, registered={q(P1): (q(P1),)})
        plan = Plans(index, AppRoutes(), "rfqueue.").of(q(P1), "app.t")
        assert not plan.served and plan.queues == ()
