"""Retries go through the router: a re-sent task is never pinned to a worker's queue.

``Task.retry()`` builds its message from the request, naming the queue the task came
from (``queue``, or ``exchange`` and ``routing_key``), and Celery lets such options win
over every router: a retry would go back to a worker that may be paused or dead by
now. :class:`Unpin` sits first in ``task_routes``. When the options name a worker's
dedicated queue (one that starts with ``queue_prefix``) it drops that pin from the
options Celery merges the final route with, and answers nothing, so the routers after
it (rfqueue's, which keeps the task in its pool by its ``rfqueue-pool`` header) route
the task like a new one.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any


class Unpin:
    """A ``task_routes`` entry that removes a pin to a dedicated queue; it never routes."""

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
        queue = options.get("queue")
        if self._dedicated(getattr(queue, "name", queue)):
            del options["queue"]
        if self._dedicated(options.get("routing_key")):
            del options["routing_key"]
            options.pop("exchange", None)

    def _dedicated(self, name: Any) -> bool:
        return isinstance(name, str) and name.startswith(self.queue_prefix)
