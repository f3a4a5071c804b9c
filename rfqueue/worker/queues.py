"""The worker's own queues: its dedicated queue and rfqueue's control queue.

A worker consumes them besides what Celery selects (its pools). They are added to the
app's ``task_queues`` in the worker's process, declared exactly as producers declare
them (:func:`~rfqueue.routing.destination.worker_queue`): with the arguments of the pool
queue the dedicated queue stands in for (``x-max-priority``...), since RabbitMQ refuses
a second declaration with other arguments. They must be there: a retry names the queue
its task came from, and Celery looks that name up in ``task_queues`` before any router
runs (``QueueNotFound`` with ``task_create_missing_queues=False``); remote control's
``add_consumer`` and the enforcer's resume find the declaration there too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rfqueue.keys import Keys
from rfqueue.routing.destination import direct_queue, worker_queue
from rfqueue.settings import Settings


def stand_in_pool(pools: Iterable[str], default: str) -> str:
    """The pool whose queue arguments a worker's own queue takes: the first by name.

    A worker of several pools with different arguments cannot match them all: give a
    worker's pools the same ones.
    """
    return min(pools, default=default)


def add_own_queues(app: Any, settings: Settings, nodename: str) -> str:
    """Freeze the worker's selection (its pools) and add its own two queues; its queue's name.

    Call it once Celery applied ``-Q`` and before the consumer is built: without the
    freeze a worker with no ``-Q`` consumes *every* queue its app knows.
    """
    queues = app.amqp.queues
    pools = list(queues.consume_from)
    queues.select(pools)
    pool = stand_in_pool(pools, str(app.conf.task_default_queue or "celery"))
    own = worker_queue(app, settings.queue_for(nodename), pool)
    queues.select_add(own)
    # The control queue as the chaos tick's route declares it (rfqueue.app)
    queues.select_add(direct_queue(Keys(settings.namespace).control_queue))
    return str(own.name)
