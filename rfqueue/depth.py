"""True queue depth on the Redis transport: the queue's list plus its priority lists.

kombu keeps a queue as a Redis list named after it and, for messages with a
priority, extra lists ``name + sep + step`` (``sep`` is ``"\\x06\\x16"``, steps
0, 3, 6, 9 by default). Flower and ``LLEN name`` see only the first one; the real
depth is the sum over all of them. :class:`DepthSampler` keeps those depths fresh
in memory for the load-aware policies.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from rfqueue.log import RateLimitedWarning

logger = logging.getLogger(__name__)

#: kombu's defaults (``kombu.transport.redis.PRIORITY_STEPS`` and ``Channel.sep``)
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"

#: reads the depth of each of the given queues (a broker's, or a Redis client's)
DepthReader = Callable[[Sequence[str]], dict[str, int]]


def queue_lists(
    queue: str, steps: Sequence[int] = PRIORITY_STEPS, sep: str = PRIORITY_SEP
) -> list[str]:
    """The Redis lists that hold ``queue``'s messages, in kombu's consuming order."""
    return [f"{queue}{sep}{step}" if step else queue for step in steps]


def queue_depths(
    client: Any,
    queues: Iterable[str],
    steps: Sequence[int] = PRIORITY_STEPS,
    lists: Callable[[str], list[str]] | None = None,
) -> dict[str, int]:
    """Depth of each queue, priority lists included, in one pipelined round trip.

    ``lists`` names a queue's Redis lists (default: :func:`queue_lists` with ``steps``);
    pass a broker layout's own to honour a key prefix or another separator.
    """
    lists_of = lists or (lambda queue: queue_lists(queue, steps))
    keys = {queue: lists_of(queue) for queue in queues}
    pipe = client.pipeline(transaction=False)
    for names in keys.values():
        for key in names:
            pipe.llen(key)
    lengths = iter(pipe.execute())
    return {queue: sum(int(next(lengths)) for _ in names) for queue, names in keys.items()}


def depths_or_none(read: DepthReader, queues: Sequence[str]) -> dict[str, int] | None:
    """Each queue's depth for a display, or None when the broker cannot be reached now."""
    try:
        return read(queues) if queues else {}
    except (redis.RedisError, OSError) as exc:  # OSError: BrokerUnavailable too
        logger.debug("rfqueue: cannot read queue depths: %s", exc)
        return None


def redis_depth_reader(
    client: Any, steps: Sequence[int] = PRIORITY_STEPS
) -> DepthReader:
    """:func:`queue_depths` over ``client``, as a :class:`DepthSampler` reads them."""
    return lambda queues: queue_depths(client, queues, steps)


class DepthSampler:
    """Queue depths that a background thread re-reads every ``interval`` seconds.

    Readers (the ``least_loaded`` and ``p2c`` policies) take :attr:`depths` as it is:
    never a Redis call per task. The first read happens in :meth:`ensure_started`;
    after that one pipelined round trip per interval, whatever the task rate. When
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
        """Read once and start the thread, if not done in this process yet."""
        with self._lock:
            if self.started:
                return
            self.sample()
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
        while not self._stopping.wait(self.interval):
            self.sample()


def _reset_ref(ref: weakref.ref[DepthSampler]) -> None:
    sampler = ref()
    if sampler is not None:
        sampler._reset_after_fork()
