"""Messages caught between a queue and the unacked hash when Redis went away.

kombu's Redis transport takes a message with ``BRPOP`` and then records it as
unacknowledged with a second command. If Redis stops between the two, the message is
gone from its queue and not in the unacked hash: only this process holds it, and
Celery drops it with the broken connection. The bootstep here wraps the task
channel's ``qos.append`` so that such a message is kept in memory, and pushes it back
to the front of its queue as soon as the consumer is connected again.

Its queue is the one BRPOP returned (kombu hands it to the transport's ``_deliver``),
not the routing key: through a named or topic exchange the two differ, and a list named
after the routing key is read by nobody. A write that timed out may have landed: the
put back drops that unacked record in the same transaction, so the message is restored
once, never by the put back and again from the unacked hash.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from rfqueue.brokers.redis_layout import BrokerLayout

logger = logging.getLogger(__name__)

_WRAPPED = "_rfqueue_handoff"


class Handoff:
    """Holds messages whose delivery could not be recorded, until they can go back."""

    def __init__(self) -> None:
        self._held: list[tuple[dict[str, Any], str]] = []
        self._lock = threading.Lock()
        #: the queue the delivering thread's BRPOP returned, while kombu delivers it
        self._reading = threading.local()

    def __len__(self) -> int:
        return len(self._held)

    def wrap(self, channel: Any) -> None:
        """Wrap ``channel.qos.append`` (once per channel; a reconnect brings a new one)."""
        qos = getattr(channel, "qos", None)
        if qos is None or getattr(qos, _WRAPPED, False) or not hasattr(qos, "append"):
            return
        qos.append = self._guarded(qos.append, tuple(channel.connection_errors))
        setattr(qos, _WRAPPED, True)
        transport: Any = getattr(channel, "connection", None)
        if hasattr(transport, "_deliver") and not getattr(transport, _WRAPPED, False):
            transport._deliver = self._noting_queue(transport._deliver)
            setattr(transport, _WRAPPED, True)

    def _noting_queue(self, deliver: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap kombu's ``Transport._deliver(message, queue)`` to note the queue read."""

        def deliver_from(message: Any, queue: Any) -> Any:
            self._reading.queue = queue
            try:
                return deliver(message, queue)
            finally:
                self._reading.queue = None

        return deliver_from

    def _guarded(
        self, append: Callable[..., Any], errors: tuple[type[BaseException], ...]
    ) -> Callable[..., Any]:
        def record(message: Any, delivery_tag: Any) -> Any:
            try:
                return append(message, delivery_tag)
            except errors:
                raw = getattr(message, "_raw", None)
                # basic_get (no BRPOP, no _deliver) reads one named queue: its routing key
                queue = getattr(self._reading, "queue", None) or (
                    getattr(message, "delivery_info", None) or {}
                ).get("routing_key")
                if isinstance(raw, dict) and isinstance(queue, str):
                    with self._lock:
                        self._held.append((raw, queue))
                raise

        return record

    def put_back(self, client: Any, layout: BrokerLayout) -> int:
        """Push every held message back to the front of its queue; keep them on failure.

        Run it before anything restores this worker's unacked messages (the reclaim): a
        landed record is taken out here, in the transaction that puts the message back.
        """
        with self._lock:
            held, self._held = self._held, []
        if not held:
            return 0
        try:
            pipe = client.pipeline(transaction=True)
            # The consuming end takes the last push first: push the newest first, so the
            # messages come back in the order they were taken.
            for raw, queue in reversed(held):
                raw.setdefault("headers", {})["redelivered"] = True
                info = (raw.get("properties") or {}).get("delivery_info")
                if isinstance(info, dict):
                    info["redelivered"] = True
                tag = (raw.get("properties") or {}).get("delivery_tag")
                if isinstance(tag, str):  # its unacked write may have landed after all
                    pipe.hdel(layout.prefix + layout.unacked, tag)
                    pipe.zrem(layout.prefix + layout.unacked_index, tag)
                priority = (raw.get("properties") or {}).get("priority")
                pipe.rpush(layout.list_for(queue, priority), json.dumps(raw))
            pipe.execute()
        except Exception:
            with self._lock:
                self._held[:0] = held
            raise
        logger.warning("rfqueue: put back %d tasks taken from Redis as it went away", len(held))
        return len(held)


#: the one per worker process
handoff = Handoff()
