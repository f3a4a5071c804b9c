"""Wake a resuming worker's blocked read, so that its queue is read at once.

kombu's Redis transport reads with one ``BRPOP`` over the queues consumed when that
read began. A queue added later (a worker resuming) is read only once the read times
out: up to ``polling_interval``, 1 s by default, while routers already send there.
When rfqueue re-adds a worker's queue it ends that read with ``CLIENT UNBLOCK``: kombu
sees an ordinary timeout and starts the next read, over every queue, its own included.
Where the worker's connection cannot be found (a proxy in between) nothing happens and
the read ends by its timeout, as before.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

logger = logging.getLogger(__name__)


def blocked_read_address(consumer: Any) -> str | None:
    """``host:port`` of the connection the consumer's channel is blocked reading on."""
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    connection = getattr(channel, "_in_poll", None)
    sock = getattr(connection, "_sock", None)
    if sock is None:
        return None
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    return f"{host}:{port}"


def wake_blocked_read(consumer: Any, client: redis.Redis) -> bool:
    """End the consumer's blocked read now; True if Redis had one to end."""
    address = blocked_read_address(consumer)
    if address is None:
        return False
    try:
        for info in client.client_list():
            if info.get("addr") == address:
                return bool(client.client_unblock(int(info["id"])))
    except (redis.RedisError, OSError, ValueError, KeyError) as exc:
        logger.debug("rfqueue: could not wake the blocked read: %s", exc)
    return False
