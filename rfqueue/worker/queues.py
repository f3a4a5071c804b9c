"""The worker's own queues: its dedicated queue and rfqueue's control queue.

A worker consumes them besides what Celery selects (its pools), declared exactly as
producers declare them (:func:`~rfqueue.routing.destination.worker_queue`): with the
arguments of the pool queue the dedicated queue stands in for (``x-max-priority``...),
since RabbitMQ refuses a second declaration with other arguments.

They are consumed but never stored in the app's queues (``app.amqp.queues``, what
``task_queues`` declares): a check that the app's queues are the configured ones
(Celery's own test suite makes one) holds with rfqueue installed. The worker app's
``Queues`` becomes a :class:`WorkerQueues`, which knows rfqueue's queues by name:

- a lookup of one resolves it without storing it: a retry names the queue its task
  came from, and Celery looks that name up before any router runs (``QueueNotFound``
  with ``task_create_missing_queues=False``; stored, with it on);
- ``select_add`` of one only selects it for consuming: that is how Celery's
  ``Consumer.add_task_queue`` adds a queue, for remote control's ``add_consumer`` and
  for the enforcer's resume alike, and it keeps the declaration (with remote control's
  arguments Celery would declare a plain direct queue).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery.app.amqp import Queues
from kombu.entity import Queue

from rfqueue.keys import Keys
from rfqueue.routing.destination import direct_queue, queue_in
from rfqueue.settings import Settings


class WorkerQueues(Queues):  # type: ignore[misc]
    """Celery's ``Queues`` of a worker's app, with rfqueue's queues consumed, not stored.

    :func:`add_own_queues` turns the app's instance into one (``__class__``: Celery
    builds it from ``AMQP.queues_cls`` long before a worker starts, and the in-process
    test worker shares its app with the test).
    """

    #: names starting with it are workers' own queues
    rfqueue_prefix = ""
    #: the control queue's name
    rfqueue_control = ""
    #: the pool whose queue arguments a worker's own queue takes
    rfqueue_pool = "celery"

    def __missing__(self, name: str) -> Queue:
        own = self.rfqueue_queue(name)
        return super().__missing__(name) if own is None else own

    def select_add(self, queue: Any, **kwargs: Any) -> Queue:
        own = self.rfqueue_queue(queue.name if isinstance(queue, Queue) else str(queue))
        if own is None:
            return super().select_add(queue, **kwargs)  # type: ignore[no-any-return]
        self.consume_from[own.name] = own
        return own

    def rfqueue_queue(self, name: str) -> Queue | None:
        """rfqueue's queue ``name`` as consumed, or declared; None for another name."""
        mine = name == self.rfqueue_control or (
            bool(self.rfqueue_prefix) and name.startswith(self.rfqueue_prefix)
        )
        if not mine or dict.__contains__(self, name):  # a declared queue stays Celery's
            return None
        consumed = self.consume_from.get(name)
        if consumed is not None:
            return consumed  # type: ignore[no-any-return]
        if name == self.rfqueue_control:
            # As the chaos tick's route declares it (rfqueue.app)
            return direct_queue(name)
        return queue_in(self, name, self.rfqueue_pool)


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
    queues.__class__ = WorkerQueues
    queues.rfqueue_prefix = settings.queue_prefix
    queues.rfqueue_control = Keys(settings.namespace).control_queue
    queues.rfqueue_pool = stand_in_pool(pools, str(app.conf.task_default_queue or "celery"))
    own = queues.select_add(settings.queue_for(nodename))
    queues.select_add(queues.rfqueue_control)
    return str(own.name)
