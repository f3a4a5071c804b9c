"""Tasks a worker takes from a pool's shared queue are recorded under the worker's own queue.

kombu's Redis transport records each delivered message in its ``unacked`` hash with the
exchange and routing key it was published with. For a task sent to a pool queue
(``celery``, ``video``), shared by every worker of the pool, that entry does not say
which worker took it, so when that worker dies the rescue cannot tell its tasks from
those of live workers, and kombu puts them back only after its visibility timeout
(an hour by default). The wrapper here readdresses such a message to the worker's
own queue (the anonymous exchange, routing key ``rfqueue.<nodename>``) just before
kombu records it: the unacked entry then names the worker, and
:meth:`~rfqueue.brokers.stranded.StrandedMessages.restore_unacked` finds it as it finds
the tasks routed to that queue. Celery sees the task as if it came from the worker's
own queue (as a pushed task does), so a retry is routed again by its pool header.

Only messages that rfqueue's router sent to their pool (the ``rfqueue-pool`` header
names the queue they came from) are readdressed; anything else keeps kombu's ways.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rfqueue.keys import POOL_HEADER

_WRAPPED = "_rfqueue_claim"


def claim_pool_deliveries(channel: Any, own_queue: str) -> None:
    """Wrap ``channel.qos.append`` (once per channel; a reconnect brings a new one)."""
    qos = getattr(channel, "qos", None)
    if qos is None or getattr(qos, _WRAPPED, False) or not hasattr(qos, "append"):
        return
    qos.append = _claiming(qos.append, own_queue, channel)
    setattr(qos, _WRAPPED, True)


def _claiming(append: Callable[..., Any], own_queue: str, channel: Any) -> Callable[..., Any]:
    def record(message: Any, delivery_tag: Any) -> Any:
        if _consumed(channel, message):
            readdress(message, own_queue)
        return append(message, delivery_tag)

    return record


def _consumed(channel: Any, message: Any) -> bool:
    """The worker still consumes the queue ``message`` came from.

    A read that was under way when a pause cancelled the pool's consumer delivers a
    message nobody here will run: kombu records it, then rejects it back to the queue
    its record names ("Requeuing undeliverable message ... No consumers"). Readdressed,
    it would go back to the paused worker's own queue instead of its pool's.
    """
    callbacks = getattr(getattr(channel, "connection", None), "_callbacks", None)
    info = getattr(message, "delivery_info", None)
    if not isinstance(callbacks, dict) or not isinstance(info, dict):
        return True  # not kombu's virtual transport: nothing to tell
    return info.get("routing_key") in callbacks


def readdress(message: Any, own_queue: str) -> bool:
    """Address ``message`` to ``own_queue`` if it came from the pool its header names."""
    info = getattr(message, "delivery_info", None)
    headers = getattr(message, "headers", None)
    if not isinstance(info, dict) or not isinstance(headers, dict):
        return False
    pool = headers.get(POOL_HEADER)
    if not isinstance(pool, str) or info.get("routing_key") != pool or pool == own_queue:
        return False
    # delivery_info is the dict inside message._raw that kombu writes to the unacked hash
    info.update(exchange="", routing_key=own_queue)
    return True
