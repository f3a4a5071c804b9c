"""The router's answer is a ``kombu.Queue``: producers with ``task_create_missing_queues=False``
send to a worker's queue, declared exactly as Celery would have made it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from kombu import Exchange, Queue

from rfqueue.routing.destination import worker_queue
from rfqueue.routing.dispatch import dispatch_many
from rfqueue.table import FailureTable
from tests.unit.routing.test_dispatch import QA, QB, QC, broker, by_id, make_app  # noqa: F401


@pytest.fixture
def fleet_of_three(broker: Counter[str], use_fake_redis: None, table: FailureTable) -> None:  # noqa: F811
    for queue in (QA, QB, QC):
        table.register(queue.removeprefix("rfqueue."), queue)


@pytest.fixture
def producer(fleet_of_three: None, stop: Callable[..., None]) -> Iterator[Callable[..., Any]]:
    """A producer app with the given Celery settings; its snapshot is stopped afterwards."""
    apps: list[Any] = []

    def make(**conf: Any) -> Any:
        app = make_app()
        app.conf.update(conf)
        apps.append(app)
        return app

    yield make
    for app in apps:
        stop(app.conf.task_routes[0].snapshot)


@pytest.mark.parametrize("create_missing", [True, False])
def test_apply_async_reaches_a_worker_queue_whatever_create_missing_queues_says(
    producer: Callable[..., Any], client: fakeredis.FakeRedis, create_missing: bool
) -> None:
    # Given a producer that may not create queues it does not know (Celery's integration suite)
    app = producer(task_create_missing_queues=create_missing)
    # When it sends tasks one by one and in a batch
    task = app.tasks["app.work"]
    ids = [task.apply_async((n,)).id for n in range(3)]
    ids += dispatch_many(task, [(n,) for n in range(3)])
    # Then every task is in one worker's own queue, shared out as usual
    sent = by_id(client)
    assert set(ids) <= set(sent)
    keys = Counter(sent[i]["properties"]["delivery_info"]["routing_key"] for i in ids)
    assert keys == {QA: 2, QB: 2, QC: 2}


def test_the_queue_is_the_one_celery_would_have_made(producer: Callable[..., Any]) -> None:
    app = producer()
    made = app.amqp.queues.new_missing(QA)
    queue = worker_queue(app, QA, "celery")
    assert (queue.name, queue.exchange, queue.routing_key) == (made.name, made.exchange, QA)
    assert queue.queue_arguments == made.queue_arguments


def test_the_queue_has_the_arguments_of_its_pool(producer: Callable[..., Any]) -> None:
    # Given a pool queue declared with priorities (as on RabbitMQ), and a default max priority
    video = Queue("video", Exchange("media", "topic"), "media.video",
                  queue_arguments={"x-max-priority": 9, "x-queue-type": "classic"})  # fmt: skip
    app = producer(task_queues=[video, Queue("celery")], task_queue_max_priority=5)
    # Then a worker queue standing in for it has the same arguments; others get the default
    assert worker_queue(app, QA, "video").queue_arguments == video.queue_arguments
    assert worker_queue(app, QB, "celery").queue_arguments == {"x-max-priority": 5}
    assert worker_queue(app, QB, "celery").exchange == Exchange(QB)


def test_routing_adds_no_queue_to_the_app(producer: Callable[..., Any]) -> None:
    # A worker that routes (chain steps) must not start consuming other workers' queues
    app = producer()
    app.tasks["app.work"].apply_async((1,), queue="unknown-pool")
    app.tasks["app.work"].apply_async((1,))
    assert not {QA, QB, QC} & set(app.amqp.queues)
