"""Routed counts follow what Celery published: a refused route counts nothing, and a task
counts under the queue it went to."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from kombu.exceptions import EncodeError

from rfqueue.routing.accepted import count_published, expect
from rfqueue.routing.routed import RoutedCounts
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable

QA, QB = "rfqueue.a@h", "rfqueue.b@h"


@pytest.fixture
def router(
    use_fake_redis: None, table: FailureTable, stop: Callable[..., None]
) -> Iterator[Router]:
    """A router of an app on kombu's in-memory transport, over two up workers."""
    for queue in (QA, QB):
        table.register(queue.removeprefix("rfqueue."), queue)
    app = Celery("counted", broker="memory://", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"])
    # round robin: counts per worker queue (pull would count the pool's)
    settings = Settings(redis_url="redis://fake:6379/0", namespace="t", policy="round_robin")
    router = Router(app, settings)
    app.conf.task_routes = [router]
    yield router
    stop(router.snapshot)


def test_a_route_that_celery_refuses_is_not_counted(router: Router) -> None:
    # Given a task whose arguments cannot be encoded: Celery refuses it after the route
    for _ in range(3):
        with pytest.raises(EncodeError):
            router.app.send_task("tasks.add", args=(object(),))
    # Then nothing was counted, and the next task that is sent is
    assert router.routed.totals() == {}
    router.app.send_task("tasks.add", args=(1,))
    assert sum(router.routed.totals().values()) == 1


def test_a_sent_task_counts_under_its_queue(router: Router) -> None:
    for n in range(4):
        router.app.send_task("tasks.add", args=(n,))
    assert router.routed.totals() == {QA: 2, QB: 2}


def test_a_task_published_elsewhere_counts_nowhere() -> None:
    # Given a route to QA, When the message goes out by another exchange and key
    counts = RoutedCounts()
    expect(counts, QA)
    count_published(sender="tasks.add", exchange="media", routing_key="media.video")
    # Then it is not counted, and the note is spent
    count_published(sender="tasks.add", exchange="", routing_key=QA)
    assert counts.totals() == {}
    # And a message that went to QA, through the default or its own exchange, counts there
    for exchange in ("", QA):
        expect(counts, QA)
        count_published(sender="tasks.add", exchange=exchange, routing_key=QA)
    assert counts.totals() == {QA: 2}
