"""How many tasks this process routed to each queue: counted in memory, flushed in batches.

The router adds one to a per-process dict per routed task, under a lock held for the
add alone (never over I/O), so threads routing at the same instant lose nothing and
the structure is one dict per process, one entry per queue, whatever the number of
threads or greenlets that route (under gevent or eventlet every greenlet is a
"thread": per-thread dicts grew without bound). A background thread (the snapshot's
refresh thread) adds what was routed since the last flush to the Redis hash
``Keys(namespace).routed`` (queue -> count) with one HINCRBY per queue in one
pipeline, at most every ``refresh_interval``: never a Redis call per task. A failed
flush keeps the counts for the next one.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from typing import Any

import redis


class RoutedCounts:
    """Per-queue counts of the tasks this process routed, since it started (or forked)."""

    def __init__(self) -> None:
        self._reset()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_ref(ref))

    def _reset(self) -> None:
        # After fork the parent's counts are the parent's to flush: the child starts at zero.
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._flushed: Counter[str] = Counter()

    def add(self, queue: str, n: int = 1) -> None:
        """Count ``n`` tasks routed to ``queue`` (no I/O; the lock covers the add alone);
        a batch that did not go out takes back its own with a negative ``n``."""
        with self._lock:
            self._counts[queue] = self._counts.get(queue, 0) + n

    def count(self, queue: str) -> int:
        """Tasks routed to ``queue`` so far."""
        return self._counts.get(queue, 0)

    def totals(self) -> Counter[str]:
        """Tasks routed to each queue so far."""
        with self._lock:
            return Counter(self._counts)

    def flush(self, client: Any, key: str) -> dict[str, int]:
        """Add what was routed since the last flush to the hash ``key``; return what was added.

        Raises the Redis error when the pipeline fails; those counts stay for the next call.
        Called from one thread at a time (the snapshot's refresh thread).
        """
        total = self.totals()
        added = {q: n - self._flushed[q] for q, n in total.items() if n > self._flushed[q]}
        if not added:
            return {}
        pipe = client.pipeline(transaction=False)
        for queue, n in added.items():
            pipe.hincrby(key, queue, n)
        pipe.execute()
        self._flushed = total
        return added


def flush_quietly(routed: RoutedCounts, client: Any, key: str, warn: Any) -> None:
    """Flush, turning a Redis failure into a (rate-limited) warning: the counts wait."""
    try:
        routed.flush(client, key)
    except (redis.RedisError, OSError) as exc:
        warn("rfqueue: cannot add routed counts to %s (%s); will retry", key, exc)


def _reset_ref(ref: weakref.ref[RoutedCounts]) -> None:
    obj = ref()
    if obj is not None:
        obj._reset()
