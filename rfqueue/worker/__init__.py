"""Inside a Celery worker: the bootstep, self-enforcement, the rescue, the inbound guard.

:mod:`~rfqueue.worker.step` is the consumer bootstep, :mod:`~rfqueue.worker.queues`
the worker's own queues; :mod:`~rfqueue.worker.enforcer` keeps the consumer in line with the table;
:mod:`~rfqueue.worker.rescue` moves what waits for workers that are not up;
:mod:`~rfqueue.worker.clock` warns of clock skew; :mod:`~rfqueue.worker.inbound`
drops queue items that are no kombu message.

Layering: this package may import routing (the rescue chooses targets by policy),
the brokers, the table and the foundation modules. Nothing below imports it.
"""

from rfqueue.worker.inbound import MalformedMessageGuard
from rfqueue.worker.step import RfqueueStep

__all__ = ["MalformedMessageGuard", "RfqueueStep"]
