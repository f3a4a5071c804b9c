"""Where kombu's Redis transport keeps a queue: its lists, its priority lists, the unacked hash.

kombu keeps a queue as a Redis list named after it and, for messages with a
priority, extra lists ``name + sep + step`` (``sep`` is ``"\\x06\\x16"``, steps
0, 3, 6, 9 by default). Flower and ``LLEN name`` see only the first one; the real
depth is the sum over all of them. Messages delivered and not yet acknowledged wait in
the ``unacked`` hash. :class:`BrokerLayout` names all of these for one app's transport
options (a ``global_keyprefix`` included).
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rfqueue.brokers.base import DepthReader

#: kombu's defaults (``kombu.transport.redis.PRIORITY_STEPS`` and ``Channel.sep``)
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


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


def queue_heads(
    client: Any, queues: Iterable[str], lists: Callable[[str], list[str]] | None = None
) -> dict[str, list[str | None]]:
    """The next message of each of a queue's lists (the consuming end: kombu BRPOPs from
    the right), ``None`` for an empty list, in one pipelined round trip."""
    lists_of = lists or queue_lists
    keys = {queue: lists_of(queue) for queue in queues}
    pipe = client.pipeline(transaction=False)
    for names in keys.values():
        for key in names:
            pipe.lindex(key, -1)
    heads = iter(pipe.execute())
    return {queue: [next(heads) for _ in names] for queue, names in keys.items()}


def redis_depth_reader(client: Any, steps: Sequence[int] = PRIORITY_STEPS) -> DepthReader:
    """:func:`queue_depths` over ``client``, as a :class:`DepthSampler` reads them."""
    return lambda queues: queue_depths(client, queues, steps)


@dataclass(frozen=True)
class BrokerLayout:
    """Where kombu's Redis transport keeps queues and unacknowledged messages."""

    #: ``global_keyprefix`` of the broker transport options
    prefix: str = ""
    steps: tuple[int, ...] = PRIORITY_STEPS
    sep: str = PRIORITY_SEP
    unacked: str = "unacked"
    unacked_index: str = "unacked_index"

    @classmethod
    def from_transport_options(cls, options: Mapping[str, Any] | None) -> BrokerLayout:
        """The layout a Celery app's ``broker_transport_options`` give kombu."""
        options = options or {}
        return cls(
            prefix=str(options.get("global_keyprefix", "")),
            steps=tuple(sorted(options.get("priority_steps", PRIORITY_STEPS))),
            sep=str(options.get("sep", PRIORITY_SEP)),
            unacked=str(options.get("unacked_key", "unacked")),
            unacked_index=str(options.get("unacked_index_key", "unacked_index")),
        )

    def lists(self, queue: str) -> list[str]:
        """The Redis lists of ``queue``, one per priority step."""
        return [self.prefix + key for key in queue_lists(queue, self.steps, self.sep)]

    def list_for(self, queue: str, priority: Any) -> str:
        """The list kombu puts a message of ``priority`` in (as ``Channel._q_for_pri``)."""
        try:
            level = max(min(int(priority), 9), 0)
        except (TypeError, ValueError):
            level = 0
        step = self.steps[max(bisect(self.steps, level) - 1, 0)]
        return self.lists(queue)[self.steps.index(step)]
