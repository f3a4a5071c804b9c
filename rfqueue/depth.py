"""True queue depth on the Redis transport: the queue's list plus its priority lists.

kombu keeps a queue as a Redis list named after it and, for messages with a
priority, extra lists ``name + sep + step`` (``sep`` is ``"\\x06\\x16"``, steps
0, 3, 6, 9 by default). Flower and ``LLEN name`` see only the first one; the real
depth is the sum over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: kombu's defaults (``kombu.transport.redis.PRIORITY_STEPS`` and ``Channel.sep``)
PRIORITY_STEPS: tuple[int, ...] = (0, 3, 6, 9)
PRIORITY_SEP = "\x06\x16"


def queue_lists(
    queue: str, steps: Sequence[int] = PRIORITY_STEPS, sep: str = PRIORITY_SEP
) -> list[str]:
    """The Redis lists that hold ``queue``'s messages, in kombu's consuming order."""
    return [f"{queue}{sep}{step}" if step else queue for step in steps]


def queue_depths(
    client: Any, queues: Iterable[str], steps: Sequence[int] = PRIORITY_STEPS
) -> dict[str, int]:
    """Depth of each queue, priority lists included, in one pipelined round trip."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for queue in names:
        for key in queue_lists(queue, steps):
            pipe.llen(key)
    lengths = pipe.execute()
    width = len(steps)
    return {
        queue: sum(int(n) for n in lengths[i * width : (i + 1) * width])
        for i, queue in enumerate(names)
    }
