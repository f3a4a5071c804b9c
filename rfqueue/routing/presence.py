"""Each router tells Redis how fresh its copy of the table is, so stale ones can be seen.

A router routes from its process's :class:`~rfqueue.table.snapshot.Snapshot`. If the
snapshot's refresh thread dies or stays stuck, the router keeps routing from an old
view, silently. So, from that same thread (the snapshot hook that flushes the routed
counts, at most every ``refresh_interval``), each router writes one field of the hash
``Keys.routers``: its id (``host:pid``) -> ``{"read": its snapshot's last full read,
"interval": its refresh_interval, "reported": now}`` (epoch seconds). The exporter
turns it into ``rfqueue_router_snapshot_age_seconds{router}``: a router whose refresh
thread stopped stops reporting too, so its age grows until the field is dropped as
gone (the exporter drops fields not reported for :data:`GONE_AFTER`). A router that
exits cleanly removes its own field (at interpreter exit, and in a Celery pool child
at ``worker_process_shutdown``), so a routine restart raises no alarm. The hash
expires when no router has reported for :data:`GONE_AFTER`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
from typing import Any

import redis

from rfqueue.keys import ROUTER_GONE_AFTER as GONE_AFTER


def router_id() -> str:
    """``host:pid`` of this process (a forked child has its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Presence:
    """Reports one process's snapshot freshness; removes it at a clean exit."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self._registered_pid = 0

    def report(self, read_at: float, interval: float, now: float) -> None:
        """Write this router's field; raises the Redis error (the caller warns).

        ``read_at`` and ``now`` are by the table's clock (the Redis server's), as the
        exporter that reads them judges.
        """
        self._register_exit()
        record = {"read": read_at, "interval": interval, "reported": now}
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.key, router_id(), json.dumps(record))
        pipe.expire(self.key, int(GONE_AFTER))
        pipe.execute()

    def remove(self) -> None:
        """Drop this router's field (a clean exit): quietly, it is the last thing done."""
        with contextlib.suppress(redis.RedisError, OSError):
            self.client.hdel(self.key, router_id())

    def _register_exit(self) -> None:
        # Once per process: a forked child registers its own removal.
        if self._registered_pid == os.getpid():
            return
        self._registered_pid = os.getpid()
        atexit.register(self.remove)
        with contextlib.suppress(ImportError):
            # A prefork pool child leaves with os._exit (no atexit); Celery says so first.
            from celery import signals

            signals.worker_process_shutdown.connect(self._on_pool_exit, weak=False)

    def _on_pool_exit(self, **_: Any) -> None:
        self.remove()
