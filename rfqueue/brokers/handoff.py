"""Messages caught between a queue and the unacked hash when Redis went away.

kombu's Redis transport takes a message with ``BRPOP`` and then records it as
unacknowledged with a second command. If Redis stops between the two, the message is
gone from its queue and not in the unacked hash: only this process holds it, and
Celery drops it with the broken connection. The bootstep here wraps the task
channel's ``qos.append`` so that such a message is kept in memory, and pushes it back
to the front of its queue as soon as the consumer is connected again.
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

    def __len__(self) -> int:
        return len(self._held)

    def wrap(self, channel: Any) -> None:
        """Wrap ``channel.qos.append`` (once per channel; a reconnect brings a new one)."""
        qos = getattr(channel, "qos", None)
        if qos is None or getattr(qos, _WRAPPED, False) or not hasattr(qos, "append"):
            return
        qos.append = self._guarded(qos.append, tuple(channel.connection_errors))
        setattr(qos, _WRAPPED, True)

    def _guarded(
        self, append: Callable[..., Any], errors: tuple[type[BaseException], ...]
    ) -> Callable[..., Any]:
        def record(message: Any, delivery_tag: Any) -> Any:
            try:
                return append(message, delivery_tag)
            except errors:
                raw = getattr(message, "_raw", None)
                queue = (getattr(message, "delivery_info", None) or {}).get("routing_key")
                if isinstance(raw, dict) and isinstance(queue, str):
                    with self._lock:
                        self._held.append((raw, queue))
                raise

        return record

    def put_back(self, client: Any, layout: BrokerLayout) -> int:
        """Push every held message back to the front of its queue; keep them on failure."""
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
