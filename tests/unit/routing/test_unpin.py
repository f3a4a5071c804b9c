"""Retries are routed afresh: Unpin drops a pin to a dedicated queue before the routers run."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from rfqueue.routing.router import Router
from rfqueue.routing.unpin import Unpin
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from tests.unit.routing.test_router import W1, W2, W3, fleet, make_settings, q  # noqa: F401

pytestmark = pytest.mark.usefixtures("use_fake_redis")


@pytest.fixture
def app(fleet: FailureTable) -> Celery:  # noqa: F811
    app = Celery("rfq-test", broker="memory://", set_as_current=False)
    app.conf.task_routes = [Unpin("rfqueue."), Router(app, settings=make_settings())]
    return app


#: what every message rfqueue routed carries, and so every retry of one
PLACED = {"rfqueue-pool": "celery"}


def route(app: Celery, options: dict[str, Any]) -> str:
    return str(app.amqp.router.route(options, "tasks.add", (1, 2), {})["queue"].name)


@pytest.fixture
def w1_paused(use_fake_redis: None, fleet: FailureTable, app: Celery) -> None:  # noqa: F811
    # Given W1 paused and W3 down: only W2 is up
    fleet.pause(W1, 60, Reason.MANUAL)
    fleet.mark_down(W3, Reason.SHUTDOWN)
    router = app.conf.task_routes[1]
    assert router.snapshot.refresh()


@pytest.mark.usefixtures("w1_paused")
class TestRetriesAreRoutedAfresh:
    def test_retry_naming_the_old_queue_goes_to_an_up_worker(self, app: Celery) -> None:
        # When a retry names W1's queue (what Task.retry sends for the default exchange)
        # Then it goes to the only up worker instead
        assert route(app, {"queue": q(W1), "headers": dict(PLACED)}) == q(W2)

    def test_retry_naming_exchange_and_routing_key(self, app: Celery) -> None:
        options = {"exchange": "", "routing_key": q(W1), "priority": 0, "headers": dict(PLACED)}
        result = app.amqp.router.route(options, "tasks.add", (1, 2), {})
        assert result["queue"].name == q(W2)
        assert "routing_key" not in result and "exchange" not in result
        assert result["priority"] == 0  # the rest of the options is kept

    def test_a_real_task_retry_signature_is_unpinned(self, app: Celery) -> None:
        # Given the signature Celery builds for a retry of a task delivered from W1's queue
        @app.task(name="tasks.flaky", bind=True)
        def flaky(self: Any) -> None:
            """A task that would retry."""

        request = {
            "id": "t-1",
            "args": [],
            "kwargs": {},
            "delivery_info": {"exchange": "", "routing_key": q(W1), "priority": None},
            "headers": dict(PLACED),  # the header rfqueue's router put on the first attempt
        }
        flaky.push_request(**request)
        try:
            options = dict(flaky.signature_from_request().options)
        finally:
            flaky.pop_request()
        assert options["queue"] == q(W1)  # Celery pins the retry to the old queue
        # When it is routed, Then the pin is gone
        assert route(app, options) == q(W2)

    def test_an_explicit_pin_to_a_worker_s_queue_is_kept(self, app: Celery) -> None:
        # The caller named the worker (host-local work, a canary): Celery's precedence holds
        assert route(app, {"queue": q(W1)}) == q(W1)
        options = {"exchange": "", "routing_key": q(W1)}
        assert app.amqp.router.route(options, "tasks.add", (), {})["routing_key"] == q(W1)

    def test_other_queues_stay_pinned(self, app: Celery) -> None:
        # A queue the caller chose that is not a dedicated one keeps winning
        assert route(app, {"queue": "reports"}) == "reports"
        options = {"exchange": "reports", "routing_key": "reports.daily"}
        assert app.amqp.router.route(options, "tasks.add", (), {})["routing_key"] == "reports.daily"


@pytest.mark.parametrize("create_missing", [True, False])
def test_install_puts_unpin_first_and_the_chaos_tick_on_the_control_queue(
    create_missing: bool,
) -> None:
    from rfqueue.app import install

    app = Celery("rfq-test", broker="memory://", set_as_current=False)
    app.conf.task_create_missing_queues = create_missing
    app.conf.task_routes = [{"tasks.mine": {"queue": "mine"}}]
    install(app, redis_url="redis://fake-table:6379/0")
    routes = app.conf.task_routes
    assert isinstance(routes[0], Unpin) and isinstance(routes[2], Router)
    # rfqueue's own chaos tick goes to the control queue every worker consumes
    assert routes[1]["rfqueue.chaos"]["queue"].name == "rfqueue-control"
    # the user's routes come after the router, which asks them for each task's pool
    assert routes[3] == {"tasks.mine": {"queue": "mine"}}
    assert app.amqp.router.route({}, "rfqueue.chaos")["queue"].name == "rfqueue-control"
