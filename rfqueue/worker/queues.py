"""The worker's own queues: its dedicated queue and rfqueue's control queue.

A worker consumes them besides what Celery selects (its pools), without adding them to
the app's ``task_queues``: the app's queues stay what the user configured (Celery's
own test suite checks that they do, and ``celery purge`` names them). The dedicated
queue is declared exactly as producers declare it
(:func:`~rfqueue.routing.destination.worker_queue`): with the arguments of the pool
queue it stands in for (``x-max-priority``...), since RabbitMQ refuses a second
declaration with other arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu.entity import Queue

from rfqueue.keys import Keys
from rfqueue.routing.destination import direct_queue, worker_queue
from rfqueue.settings import Settings


def stand_in_pool(pools: Iterable[str], default: str) -> str:
    """The pool whose queue arguments a worker's own queue takes: the first by name.

    A worker of several pools with different arguments cannot match them all: give a
    worker's pools the same ones.
    """
    return min(pools, default=default)


def own_queues(app: Any, settings: Settings, nodename: str) -> list[Queue]:
    """Freeze the worker's selection (its pools) and return its own two queues.

    Call it once Celery applied ``-Q``: without the freeze a worker with no ``-Q``
    consumes *every* queue its app knows.
    """
    queues = app.amqp.queues
    pools = list(queues.consume_from)
    queues.select(pools)
    pool = stand_in_pool(pools, str(app.conf.task_default_queue or "celery"))
    own = worker_queue(app, settings.queue_for(nodename), pool)
    # The control queue as the chaos tick's route declares it (rfqueue.app)
    return [own, direct_queue(Keys(settings.namespace).control_queue)]


def consume(consumer: Any, queue: Queue) -> None:
    """Consume ``queue`` now: Celery's ``add_task_queue``, leaving the app's queues alone."""
    task_consumer = consumer.task_consumer
    if not task_consumer.consuming_from(queue.name):
        task_consumer.add_queue(queue)
        task_consumer.consume()
