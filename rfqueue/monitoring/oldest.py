"""The age of the oldest waiting task of each queue, at no cost per task.

Celery's messages carry no time of sending. So at each scrape the exporter reads the
next message of each of a queue's Redis lists (``LINDEX list -1``: kombu consumes
from the right) and remembers when it first saw that message there, by its delivery
tag. A queue whose next message stays the same scrape after scrape is not being
consumed: its age grows. The age is a lower bound, counted from the first scrape that
saw the message at the head; an empty queue is 0. Memory is one small record per
non-empty list. Only Redis brokers have heads to read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: a queue's lists' next messages, ``None`` for an empty list (see redis_layout.queue_heads)
HeadReader = Callable[[Sequence[str]], dict[str, list[str | None]]]


@dataclass(frozen=True)
class Seen:
    """A head message as first seen: its raw hash, its delivery tag, when."""

    digest: int
    tag: str
    since: float


class OldestTasks:
    """Remembers the head of every list between scrapes; one per exporter."""

    def __init__(self, heads: HeadReader, clock: Callable[[], float] = time.time) -> None:
        self.heads = heads
        self.clock = clock
        self._seen: dict[tuple[str, int], Seen] = {}

    def ages(self, queues: Sequence[str]) -> dict[str, float]:
        """Seconds each queue's oldest head has been seen waiting (0 when empty)."""
        now = self.clock()
        seen: dict[tuple[str, int], Seen] = {}
        ages = {}
        for queue, heads in self.heads(queues).items():
            age = 0.0
            for index, raw in enumerate(heads):
                if raw is not None:
                    first = seen[(queue, index)] = self._first_seen((queue, index), raw, now)
                    age = max(age, now - first.since)
            ages[queue] = age
        self._seen = seen  # lists found empty are forgotten
        return ages

    def _first_seen(self, key: tuple[str, int], raw: str, now: float) -> Seen:
        before = self._seen.get(key)
        digest = hash(raw)
        if before is not None and before.digest == digest:
            return before  # the same message, not parsed again
        tag = delivery_tag(raw)
        if before is not None and before.tag == tag:
            return Seen(digest, tag, before.since)
        return Seen(digest, tag, now)


def delivery_tag(raw: str | bytes) -> str:
    """The kombu message's delivery tag; the raw text itself if it has none."""
    try:
        tag = json.loads(raw)["properties"]["delivery_tag"]
    except (ValueError, TypeError, KeyError):
        tag = None
    if isinstance(tag, str):
        return tag
    return raw if isinstance(raw, str) else raw.decode(errors="replace")
