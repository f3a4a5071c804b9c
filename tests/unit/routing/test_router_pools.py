"""Routing inside pools and task sets: your routes pick the pool, rfqueue the worker in it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from rfqueue.routing.router import NoWorkerUp, Router
from rfqueue.routing.unpin import Unpin
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.service import Service

P1, P2, V1, V2 = "p1@h", "p2@h", "v1@h", "v2@h"
URL = "redis://fake-table:6379/0"
USER_ROUTES = {"app.v": {"queue": "video"}, "app.nowhere": {"queue": "nobody"}}

pytestmark = pytest.mark.usefixtures("use_fake_redis")


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def fleet(table: FailureTable, clock: Any) -> FailureTable:
    """p1, p2 consume celery (only p1 has app.t); v1, v2 consume video."""
    clock.now = time.time()
    table.register(P1, q(P1), Service.of(["celery"], ["app.t", "app.plain"]))
    table.register(P2, q(P2), Service.of(["celery"], ["app.plain"]))
    for worker in (V1, V2):
        table.register(worker, q(worker), Service.of(["video"], ["app.v", "app.plain"]))
    return table


def pools_settings(**changes: Any) -> Settings:
    """Round robin unless told: these tests name which worker of a pool takes each task
    (with the default ``pull`` the pool's own queue takes it: see policies/test_pull.py)."""
    return Settings(redis_url=URL, namespace="t", **{"policy": "round_robin", **changes})


def make_app(**settings: Any) -> Celery:
    """As install() orders them: Unpin, the router, then the user's own routes."""
    app = Celery("rfq-pools", broker="memory://", set_as_current=False)
    router = Router(app, settings=pools_settings(**settings))
    app.conf.task_routes = [Unpin("rfqueue."), router, USER_ROUTES]
    return app


@pytest.fixture
def app(fleet: FailureTable) -> Iterator[Celery]:
    app = make_app()
    yield app
    router(app).snapshot.stop()


def router(app: Celery) -> Router:
    return next(r for r in app.conf.task_routes if isinstance(r, Router))


def fresh(app: Celery) -> Celery:
    assert router(app).snapshot.refresh()
    return app


def route(app: Celery, name: str, **options: Any) -> dict[str, Any]:
    return dict(app.amqp.router.route(options, name, (), {}))


def queues(app: Celery, name: str, n: int = 12, **options: Any) -> Counter[str]:
    return Counter(route(app, name, **dict(options))["queue"].name for _ in range(n))


class TestTaskSets:
    def test_a_task_goes_only_to_workers_that_have_it(self, app: Celery) -> None:
        assert queues(app, "app.t") == {q(P1): 12}

    def test_a_task_every_worker_of_the_pool_has_is_shared(self, app: Celery) -> None:
        assert queues(app, "app.plain") == {q(P1): 6, q(P2): 6}

    def test_celery_and_rfqueue_tasks_go_anywhere_in_the_pool(self, app: Celery) -> None:
        assert queues(app, "celery.ping") == {q(P1): 6, q(P2): 6}


def test_a_worker_whose_task_set_changes_on_restart_is_routed_by_the_new_one(
    app: Celery, fleet: FailureTable
) -> None:
    # Given p2 restarted with a build that has app.t too
    fleet.register(P2, q(P2), Service.of(["celery"], ["app.t", "app.plain"]))
    assert queues(fresh(app), "app.t") == {q(P1): 6, q(P2): 6}
    # When p1 restarts with a build without it
    fleet.mark_down(P1, Reason.SHUTDOWN)
    fleet.register(P1, q(P1), Service.of(["celery"], ["app.plain"]))
    # Then app.t goes to p2 only
    assert queues(fresh(app), "app.t") == {q(P2): 12}


class TestPools:
    def test_a_user_route_picks_the_pool(self, app: Celery) -> None:
        assert queues(app, "app.v") == {q(V1): 6, q(V2): 6}

    def test_a_paused_worker_gets_none_of_its_pool(self, app: Celery, fleet: FailureTable) -> None:
        fleet.pause(V1, 60, Reason.MANUAL)
        assert queues(fresh(app), "app.v") == {q(V2): 12}

    def test_an_explicit_queue_naming_a_pool_beats_the_routes(self, app: Celery) -> None:
        assert queues(app, "app.plain", queue="video") == {q(V1): 6, q(V2): 6}

    def test_a_queue_no_worker_consumes_is_left_alone(self, app: Celery) -> None:
        assert route(app, "app.plain", queue="reports")["queue"].name == "reports"
        assert route(app, "app.nowhere")["queue"].name == "nobody"
        assert router(app).routed.totals() == {}

    def test_the_message_carries_its_pool(self, app: Celery) -> None:
        assert route(app, "app.v")["headers"] == {"rfqueue-pool": "video"}

    def test_the_callers_headers_keep_theirs_and_gain_the_pool(self, app: Celery) -> None:
        options = route(app, "app.v", headers={"trace": "abc"})
        assert options["headers"] == {"trace": "abc", "rfqueue-pool": "video"}

    def test_a_retry_stays_in_its_pool(self, app: Celery) -> None:
        # Given a retry of a task first sent with queue="video", pinned to v1's queue
        retry = {"queue": q(V1), "headers": {"rfqueue-pool": "video"}}
        # Then Unpin drops the pin and the header keeps it in the video pool
        assert queues(app, "app.plain", **retry) == {q(V1): 6, q(V2): 6}

    def test_the_later_routes_other_keys_are_kept(self, fleet: FailureTable) -> None:
        app = Celery("rfq-pools", broker="memory://", set_as_current=False)
        settings = pools_settings()
        app.conf.task_routes = [Router(app, settings=settings), {"app.v": {"queue": "video",
                                "priority": 7, "routing_key": "video"}}]  # fmt: skip
        options = route(app, "app.v")
        assert options["queue"].name in (q(V1), q(V2))
        assert options["priority"] == 7 and "routing_key" not in options

    def test_each_later_route_is_asked_once(self, fleet: FailureTable) -> None:
        asked: list[str] = []

        def mine(name: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(name)
            return {"queue": "nobody"}

        app = Celery("rfq-pools", broker="memory://", set_as_current=False)
        app.conf.task_routes = [Router(app, settings=pools_settings()), mine]
        assert route(app, "app.plain")["queue"].name == "nobody"
        assert asked == ["app.plain"]


#: a router a test app names by dotted path, as users write ``"rfqueue.router.route"``
DOTTED = Router(settings=pools_settings())


def test_as_a_dotted_path_the_routes_after_it_are_asked(fleet: FailureTable) -> None:
    # Given the router by dotted path, which learns the sending app from the task
    app = Celery("rfq-dotted", broker="memory://", set_as_current=False)
    app.conf.task_routes = ["tests.unit.routing.test_router_pools.DOTTED", USER_ROUTES]

    @app.task(name="app.v", shared=False)
    def video() -> None:
        """A task of the video pool."""

    # Then the user's route after it picks the pool
    sent = [app.amqp.router.route({}, "app.v", (), {}, video)["queue"].name for _ in range(4)]
    assert Counter(sent) == {q(V1): 2, q(V2): 2}
    DOTTED.snapshot.stop()


def test_a_dedicated_queue_is_left_alone_by_the_router(fleet: FailureTable) -> None:
    app = Celery("rfq-alone", broker="memory://", set_as_current=False)
    app.conf.task_routes = [Router(app, settings=pools_settings())]
    assert route(app, "app.plain", queue=q(V1))["queue"].name == q(V1)


class TestNothingDropped:
    @pytest.fixture
    def video_out(self, fleet: FailureTable) -> FailureTable:
        fleet.pause(V1, 60, Reason.MANUAL)
        fleet.mark_down(V2, Reason.SHUTDOWN)
        return fleet

    def test_spread_over_the_pools_registered_workers(
        self, app: Celery, video_out: FailureTable
    ) -> None:
        assert queues(fresh(app), "app.v") == {q(V1): 6, q(V2): 6}

    def test_fallback(self, video_out: FailureTable) -> None:
        app = fresh(make_app(no_worker_up="fallback", fallback_queue="fb"))
        assert route(app, "app.v")["queue"].name == "fb"

    def test_error_names_the_task_and_the_pool(self, video_out: FailureTable) -> None:
        app = fresh(make_app(no_worker_up="error"))
        with pytest.raises(NoWorkerUp, match=r"app\.v in pool 'video'"):
            route(app, "app.v")

    def test_a_task_no_worker_of_the_pool_has_is_left_to_celery_and_told_once(
        self, app: Celery, caplog: pytest.LogCaptureFixture
    ) -> None:
        # When a task only p1 has is sent to the video pool, twice
        with caplog.at_level(logging.WARNING, logger="rfqueue.routing.router"):
            first = route(app, "app.t", queue="video")
            route(app, "app.t", queue="video")
        # Then it is not sent to a video worker (which would drop it), and one line says why
        assert first["queue"].name == "video"
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "app.t" in lines[0] and "'video'" in lines[0]

    def test_an_up_worker_that_lacks_the_task_never_gets_it(
        self, app: Celery, fleet: FailureTable
    ) -> None:
        # Given p1, the only worker with app.t, paused: p2 is up but lacks it
        fleet.pause(P1, 60, Reason.MANUAL)
        # Then app.t is spread over the pool's workers that have it: p1 only
        assert queues(fresh(app), "app.t") == {q(P1): 12}


def test_no_redis_call_per_task(app: Celery, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a started router
    route(app, "app.v")
    calls: list[Any] = []
    real = client.execute_command
    monkeypatch.setattr(client, "execute_command", lambda *a, **k: calls.append(a) or real(*a, **k))
    # When many tasks of several pools and names are routed
    for _ in range(50):
        route(app, "app.v")
        route(app, "app.t")
        route(app, "app.plain", queue="video")
    # Then the table's Redis heard nothing from the router's hot path
    assert calls == []


@pytest.mark.parametrize("policy", ["round_robin", "weighted", "least_loaded"])
def test_interleaved_pools_each_take_their_own_turns(fleet: FailureTable, policy: str) -> None:
    # Given tasks of two pools of two workers each, sent alternately
    app = make_app(policy=policy)
    sent: Counter[str] = Counter()
    for _ in range(20):
        sent[route(app, "app.plain")["queue"].name] += 1
        sent[route(app, "app.v")["queue"].name] += 1
    # Then each pool shares its own tasks out evenly (one counter for all would not)
    assert sent == {q(P1): 10, q(P2): 10, q(V1): 10, q(V2): 10}
    router(app).snapshot.stop()


def test_a_pre_4_router_after_it_is_asked_as_celery_asks_it(fleet: FailureTable) -> None:
    class OldStyle:  # route_for_task(task, args, kwargs): Celery still supports these
        def route_for_task(self, task: str, args: Any = None, kwargs: Any = None) -> Any:
            return {"queue": "video"} if task == "app.v" else None

    app = Celery("rfq-old", broker="memory://", set_as_current=False)
    app.conf.task_routes = [
        Router(app, settings=pools_settings()),
        OldStyle(),
    ]
    assert queues(app, "app.v", n=4) == {q(V1): 2, q(V2): 2}
    router(app).snapshot.stop()
