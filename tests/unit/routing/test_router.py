"""Router: every routed task goes to an up worker's queue; it never breaks apply_async."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import pytest
import redis
from celery import Celery

import rfqueue.router
import rfqueue.table.registry
from rfqueue.routing.policies.round_robin import RoundRobinPolicy
from rfqueue.routing.router import NoWorkerUp, Router, route
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.registry import snapshot_for

W1, W2, W3 = "w1@h", "w2@h", "w3@h"
URL = "redis://fake-table:6379/0"

pytestmark = pytest.mark.usefixtures("use_fake_redis")


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def make_settings(**changes: Any) -> Settings:
    """Round robin unless told: these tests name which worker's queue each task takes
    (the default ``pull`` is tested in tests/unit/routing/policies/test_pull.py)."""
    return Settings(redis_url=URL, namespace="t", **{"policy": "round_robin", **changes})


def call(router: Router, name: str = "tasks.add") -> dict[str, str] | None:
    return router(name, (1, 2), {}, {})


@pytest.fixture
def fleet(table: FailureTable, clock: Any) -> FailureTable:
    clock.now = time.time()  # the snapshot judges pauses by the real clock
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    return table


def fresh(router: Router) -> Router:
    """Bring the router's snapshot up to date now, instead of waiting for its thread."""
    assert router.snapshot.refresh()
    return router


class TestRouting:
    def test_routes_only_to_up_workers(self, fleet: FailureTable) -> None:
        # Given three workers, W2 paused
        fleet.pause(W2, 600, Reason.MANUAL)
        router = fresh(Router(settings=make_settings()))
        # When 300 tasks are routed
        counts = Counter(call(router)["queue"].name for _ in range(300))  # type: ignore[index]
        # Then none goes to W2 and the others share them
        assert q(W2) not in counts
        assert counts == {q(W1): 150, q(W3): 150}

    def test_follows_changes(self, fleet: FailureTable) -> None:
        router = fresh(Router(settings=make_settings()))
        fleet.mark_down(W1, Reason.SHUTDOWN)
        fleet.mark_down(W3, Reason.SHUTDOWN)
        fresh(router)
        assert {call(router)["queue"].name for _ in range(10)} == {q(W2)}  # type: ignore[index]

    def test_each_answer_is_a_fresh_dict(self, fleet: FailureTable) -> None:
        # Celery mutates what a router returns
        router = fresh(Router(settings=make_settings()))
        first = call(router)
        assert first is not None
        first["queue"] = "mutated"
        assert call(router) != {"queue": "mutated"}

    def test_random_policy(self, fleet: FailureTable) -> None:
        router = fresh(Router(settings=make_settings(policy="random", seed=3)))
        fleet.pause(W1, 600, Reason.MANUAL)
        fresh(router)
        assert {call(router)["queue"].name for _ in range(100)} == {q(W2), q(W3)}  # type: ignore[index]

    def test_starts_the_snapshot_on_first_use(self, fleet: FailureTable) -> None:
        router = Router(settings=make_settings())
        assert call(router) is not None
        assert router.snapshot.started
        assert router.snapshot is rfqueue.table.registry._snapshots[(URL, "t")]


class TestNoWorkerUp:
    @pytest.fixture
    def all_out(self, fleet: FailureTable) -> FailureTable:
        fleet.pause(W1, 600, Reason.MANUAL)
        fleet.mark_down(W2, Reason.SHUTDOWN)
        fleet.mark_down(W3, Reason.HEARTBEAT)
        return fleet

    def test_spread_over_every_registered_queue(self, all_out: FailureTable) -> None:
        router = fresh(Router(settings=make_settings()))
        chosen = {call(router)["queue"].name for _ in range(30)}  # type: ignore[index]
        assert chosen == {q(W1), q(W2), q(W3)}

    def test_fallback_queue(self, all_out: FailureTable) -> None:
        router = fresh(Router(settings=make_settings(no_worker_up="fallback", fallback_queue="fb")))
        assert call(router)["queue"].name == "fb"  # type: ignore[index]

    def test_error(self, all_out: FailureTable) -> None:
        router = fresh(Router(settings=make_settings(no_worker_up="error")))
        with pytest.raises(NoWorkerUp, match=r"tasks\.add"):
            call(router)

    def test_empty_table_leaves_it_to_celery(self, table: FailureTable) -> None:
        router = Router(settings=make_settings())
        assert call(router) is None


class TestFailures:
    def test_policy_error_means_default_route(
        self,
        fleet: FailureTable,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        # Given a policy that raises
        def explode(*args: Any) -> str:
            raise KeyError("boom")

        monkeypatch.setattr(RoundRobinPolicy, "choose", explode)
        router = Router(settings=make_settings())
        # When tasks are routed
        with caplog.at_level(logging.WARNING, logger="rfqueue.router"):
            answers = [call(router) for _ in range(3)]
        # Then Celery's default route is used, with one warning naming the policy
        assert answers == [None, None, None]
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 1
        assert "round_robin" in messages[0] and "boom" in messages[0]

    def test_policy_error_while_spreading(
        self, fleet: FailureTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given no worker up and a policy that raises
        for worker in (W1, W2, W3):
            fleet.mark_down(worker, Reason.SHUTDOWN)

        def explode(*args: Any) -> str:
            raise RuntimeError("boom")

        monkeypatch.setattr(RoundRobinPolicy, "choose", explode)
        router = fresh(Router(settings=make_settings()))
        # Then the router still answers, with Celery's default route
        assert call(router) is None

    def test_keeps_routing_from_the_last_snapshot(
        self, fleet: FailureTable, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a router that has seen W2 paused
        fleet.pause(W2, 600, Reason.MANUAL)
        router = fresh(Router(settings=make_settings()))

        # When Redis goes away
        def unreachable() -> Any:
            raise redis.ConnectionError("Connection refused")

        monkeypatch.setattr(router.snapshot.table, "read", unreachable)
        assert router.snapshot.refresh() is False
        # Then it routes as before
        chosen = {call(router)["queue"].name for _ in range(20)}  # type: ignore[index]
        assert chosen == {q(W1), q(W3)}


class TestSnapshotFor:
    def test_one_snapshot_per_redis_and_namespace(self, table: FailureTable) -> None:
        a = snapshot_for(make_settings())
        assert snapshot_for(make_settings(policy="random")) is a
        assert snapshot_for(Settings(redis_url=URL, namespace="other")) is not a
        assert snapshot_for(Settings(redis_url="redis://elsewhere:1/0", namespace="t")) is not a
        assert a.table.keys.namespace == "t"
        assert a.table.client is table.client

    def test_settings_come_from_the_app(self, fleet: FailureTable) -> None:
        # Given an app whose broker is Redis and whose config names the namespace
        app = Celery("rfq-test", broker=URL, set_as_current=False)
        app.conf.rfqueue_namespace = "t"
        app.conf.rfqueue_policy = "random"
        router = Router(app)
        # Then the router reads them
        assert call(router) is not None
        assert router.settings.namespace == "t"
        assert router.settings.redis_url == URL
        assert router.settings.policy == "random"

    def test_module_level_route(self) -> None:
        assert isinstance(route, Router)


class TestThroughCelery:
    @pytest.fixture
    def app(self, fleet: FailureTable) -> Celery:
        app = Celery("rfq-test", broker="memory://", set_as_current=False)
        app.conf.task_routes = [Router(app, settings=make_settings())]
        return app

    def test_message_goes_to_an_up_worker(self, app: Celery, fleet: FailureTable) -> None:
        # Given W1 and W3 down
        fleet.mark_down(W1, Reason.SHUTDOWN)
        fleet.mark_down(W3, Reason.SHUTDOWN)
        # When Celery routes a task
        options = app.amqp.router.route({}, "tasks.add", (1, 2), {})
        # Then it goes to W2's queue
        assert options["queue"].name == q(W2)

    def test_explicit_queue_wins(self, app: Celery) -> None:
        options = app.amqp.router.route({"queue": "explicit"}, "tasks.add", (1, 2), {})
        assert options["queue"].name == "explicit"

    def test_routes_rotate(self, app: Celery) -> None:
        names = [app.amqp.router.route({}, "tasks.add", (), {})["queue"].name for _ in range(6)]
        assert names == [q(W1), q(W2), q(W3)] * 2
