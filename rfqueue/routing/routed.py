"""How many tasks this process routed to each queue: counted in memory, flushed in batches.

The router adds one to a plain dict per routed task. Each thread has its own dict, so
counting needs no lock and loses nothing when threads route at the same instant; only
the thread that owns a dict writes to it. A background thread (the snapshot's refresh
thread) adds what was routed since the last flush to the Redis hash
``Keys(namespace).routed`` (queue -> count) with one HINCRBY per queue in one
pipeline, at most every ``refresh_interval``: never a Redis call per task. A failed
flush keeps the counts for the next one. The ``p2c`` policy reads the same counts.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis


class ThreadCounts(threading.local):
    """``counts``: the current thread's own dict, made and registered on its first use."""

    def __init__(self, register: Callable[[dict[str, int]], None]) -> None:
        self.counts: dict[str, int] = {}
        register(self.counts)


class RoutedCounts:
    """Per-queue counts of the tasks this process routed, since it started (or forked)."""

    def __init__(self) -> None:
        self._reset()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_ref(ref))

    def _reset(self) -> None:
        # After fork the parent's counts are the parent's to flush: the child starts at zero.
        self._lock = threading.Lock()
        #: (owning thread, its counts); only that thread writes its dict
        self._threads: list[tuple[threading.Thread, dict[str, int]]] = []
        #: counts of threads that have ended, folded in by the flusher
        self._retired: Counter[str] = Counter()
        self._flushed: Counter[str] = Counter()
        #: ``local.counts`` is this thread's dict; the router's hot path adds to it in place
        self.local = ThreadCounts(self._register)

    def _register(self, counts: dict[str, int]) -> None:
        with self._lock:
            self._threads.append((threading.current_thread(), counts))

    def add(self, queue: str, n: int = 1) -> None:
        """Count ``n`` tasks routed to ``queue`` (no lock, no I/O); a batch that did not
        go out takes back its own with a negative ``n``."""
        counts = self.local.counts
        counts[queue] = counts.get(queue, 0) + n

    def count(self, queue: str) -> int:
        """Tasks routed to ``queue`` so far."""
        n = self._retired.get(queue, 0)
        for _, counts in self._threads:  # a plain loop: p2c asks twice per task
            n += counts.get(queue, 0)
        return n

    def totals(self) -> Counter[str]:
        """Tasks routed to each queue so far."""
        total = Counter(self._retired)
        for _, counts in list(self._threads):
            total.update(dict(counts))  # dict() copies in one step while its owner writes
        return total

    def flush(self, client: Any, key: str) -> dict[str, int]:
        """Add what was routed since the last flush to the hash ``key``; return what was added.

        Raises the Redis error when the pipeline fails; those counts stay for the next call.
        Called from one thread at a time (the snapshot's refresh thread).
        """
        with self._lock:  # not over the round trip, or a new thread's first count would wait
            self._retire_ended_threads()
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

    def _retire_ended_threads(self) -> None:
        # Thread-per-request servers start threads without end: keep one dict per live one.
        alive = []
        for thread, counts in self._threads:
            if thread.is_alive():
                alive.append((thread, counts))
            else:
                self._retired.update(counts)
        self._threads = alive


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
