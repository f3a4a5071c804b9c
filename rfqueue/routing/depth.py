"""Queue depths kept fresh in memory for the load-aware policies, never read per task.

A :class:`DepthSampler` thread re-reads the depth of every registered queue every
``depth_interval`` through the app's broker (see
:meth:`rfqueue.brokers.base.Broker.depths`; on Redis one round trip per thousand
queues), whatever the task rate. A read that takes
long (thousands of queues, a slow broker) is spaced out further, so the thread never
takes more than about a fifth of the process's time from the producer it serves.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable

import redis

from rfqueue.brokers.base import DepthReader
from rfqueue.log import RateLimitedWarning

logger = logging.getLogger(__name__)

#: the pause after a read is at least this many times the read's own duration
SPACING = 4


class DepthSampler:
    """Queue depths that a background thread re-reads every ``interval`` seconds.

    Readers (the ``least_loaded`` and ``p2c`` policies) take :attr:`depths` as it is:
    never a Redis call per task. The first read happens in :meth:`ensure_started`;
    after that one read per interval (or longer after a slow read), whatever the task
    rate. When
    Redis cannot be reached the last depths stay and a rate-limited warning says so.
    After ``fork()`` the child has no thread until :meth:`ensure_started` runs there.

    ``read`` returns the depth of each queue it is given: the broker's
    :meth:`~rfqueue.brokers.Broker.depths` (Redis or RabbitMQ), or
    :func:`redis_depth_reader` over a Redis client.
    """

    def __init__(
        self,
        read: DepthReader,
        queues: Callable[[], Iterable[str]],
        interval: float,
    ) -> None:
        self.read = read
        self.interval = interval
        #: seconds until the next read: ``interval``, or longer after a slow read
        self.pause = interval
        self._queues = queues
        #: queue -> depth at the last successful read
        self.depths: dict[str, int] = {}
        #: grows by one with every successful read
        self.generation = 0
        self._warn = RateLimitedWarning(logger)
        self._reset_after_fork()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _reset_ref(ref))

    def _reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = False

    def ensure_started(self) -> None:
        """Read once and start the thread, if not done in this process yet.

        The first read is outside the lock, as in :meth:`Snapshot.ensure_started`.
        """
        if self.started:
            return
        self.sample()
        with self._lock:
            if self.started:
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="rfqueue-depth", daemon=True)
            self._thread.start()
            self.started = True

    def stop(self) -> None:
        """Stop the thread (it exits within one interval)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)
        self.started = False

    def sample(self) -> bool:
        """Read every queue's depth now; on a Redis error keep the old ones and return False."""
        queues = list(self._queues())
        try:
            depths = self.read(queues) if queues else {}
        except (redis.RedisError, OSError) as exc:  # OSError: BrokerUnavailable too
            self._warn("rfqueue: cannot read queue depths (%s); using the last ones", exc)
            return False
        self.depths = depths
        self.generation += 1
        return True

    def _run(self) -> None:
        while not self._stopping.wait(self.pause):
            started = time.monotonic()
            self.sample()
            self.pause = max(self.interval, SPACING * (time.monotonic() - started))


def _reset_ref(ref: weakref.ref[DepthSampler]) -> None:
    sampler = ref()
    if sampler is not None:
        sampler._reset_after_fork()
