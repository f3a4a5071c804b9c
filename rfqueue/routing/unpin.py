"""Retries go through the router: a re-sent task is never pinned to a worker's queue.

``Task.retry()`` builds its message from the request, naming the queue the task came
from (``queue``, or ``exchange`` and ``routing_key``), and Celery lets such options win
over every router: a retry would go back to a worker that may be paused or dead by
now. :class:`Unpin` sits first in ``task_routes``. When the options name a worker's
dedicated queue (one that starts with ``queue_prefix``) *and* carry the ``rfqueue-pool``
header, it drops that pin from the options Celery merges the final route with, and
answers nothing, so the routers after it (rfqueue's, which keeps the task in its pool by
that header) route the task like a new one.

The header is what tells a re-send from a choice: rfqueue's router puts it on every
message it places in a worker's queue, and a retry carries its request's headers. A
caller who names a worker's queue (``apply_async(queue="rfqueue.w1@host")``: work that
must run on that host, a canary) sent no such header, and keeps the worker it named,
as Celery's precedence promises; so does a retry of that task.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from rfqueue.table.service import POOL_HEADER


class Unpin:
    """A ``task_routes`` entry that removes a retry's pin to a dedicated queue; it never routes."""

    def __init__(self, queue_prefix: str) -> None:
        self.queue_prefix = queue_prefix

    def __call__(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Any,
        options: MutableMapping[str, Any],
        task: Any = None,
        **_: Any,
    ) -> None:
        if not _placed_by_rfqueue(options):
            return  # no pin of rfqueue's: the caller's own choice, if any, stands
        queue = options.get("queue")
        if self._dedicated(getattr(queue, "name", queue)):
            del options["queue"]
        if self._dedicated(options.get("routing_key")):
            del options["routing_key"]
            options.pop("exchange", None)

    def _dedicated(self, name: Any) -> bool:
        return isinstance(name, str) and name.startswith(self.queue_prefix)


def _placed_by_rfqueue(options: Mapping[str, Any]) -> bool:
    """The options re-send a message that rfqueue's router placed (it has the pool header)."""
    headers = options.get("headers")
    return isinstance(headers, Mapping) and isinstance(headers.get(POOL_HEADER), str)
