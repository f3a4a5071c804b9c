"""Routed counts follow what Celery really published, not what the router answered.

A route can be refused after the router answered (a ``before_task_publish`` receiver or
the encoder raises, the broker stays down past the retries), and the caller's own
``exchange`` and ``routing_key`` can send the task somewhere else. So the router only
notes, per thread, which queue it chose and for which :class:`RoutedCounts`; Celery's
``after_task_publish`` signal, sent once the message has gone, adds the count when the
message went to that queue. A route that is never published leaves its note until the
next route of the same thread replaces it: it is never counted.
"""

from __future__ import annotations

import threading
from typing import Any

from celery import signals

from rfqueue.routing.routed import RoutedCounts


class _Expected(threading.local):
    """The last route of this thread that has not been published yet."""

    counts: RoutedCounts | None = None
    queue: str = ""


_expected = _Expected()


def expect(counts: RoutedCounts, queue: str) -> None:
    """The router sent the task it is asked about to ``queue``: count it once published."""
    _expected.counts, _expected.queue = counts, queue


def take(exchange: Any, routing_key: str | None) -> tuple[RoutedCounts, str] | None:
    """This thread's note, spent; None unless its route sent the message where it goes
    (Celery sends a direct queue's messages through the default exchange, or the queue's own)."""
    expected = _expected
    counts = expected.counts
    if counts is None:
        return None
    expected.counts = None
    queue = expected.queue
    name = getattr(exchange, "name", exchange)
    if routing_key == queue and name in ("", queue, None):
        return counts, queue
    return None


def count_published(
    sender: Any = None, exchange: Any = None, routing_key: str | None = None, **_: Any
) -> None:
    """``after_task_publish``: count the task under the queue it was published to, if the
    router of this thread chose that queue for it."""
    noted = take(exchange, routing_key)
    if noted is not None:
        noted[0].add(noted[1])


def others_listen() -> bool:
    """Whether ``after_task_publish`` has receivers besides :func:`count_published` (a
    batch counts its own tasks and sends the signal only when someone else listens)."""
    return any(key[0] != __name__ for key, _ in signals.after_task_publish.receivers)


def count_when_published() -> None:
    """Connect :func:`count_published` once per process (a module function: it keeps no
    app alive)."""
    signals.after_task_publish.connect(count_published, weak=False, dispatch_uid=__name__)
