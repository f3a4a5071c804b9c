"""The fast path: Celery remote control tells a worker to stop or start consuming now.

Remote control is at-most-once pub/sub, so it is only ever a shortcut: each worker
also enforces its own table state (see :mod:`rfqueue.worker`).
"""

from __future__ import annotations

import logging
from typing import Any

from rfqueue.log import RateLimitedWarning
from rfqueue.table.entry import Entry

logger = logging.getLogger(__name__)


class RemoteControl:
    """Sends ``cancel_consumer``/``add_consumer`` to one worker, without waiting for replies."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._warn = RateLimitedWarning(logger)

    def stop_consuming(self, entry: Entry) -> None:
        """Ask ``entry.worker`` to cancel its consumers of ``entry.queue`` and its pools.

        Its own queue first: a worker that consumes its own queue consumes all its pools
        (the worker's enforcer learns its pools from that). A worker without known pools
        (from before pools) only has its own queue cancelled: it would not re-add them.
        """
        for queue in (entry.queue, *entry.pools):
            self._send("cancel_consumer", entry.worker, queue)

    def start_consuming(self, entry: Entry) -> None:
        """Ask ``entry.worker`` to consume its pools and ``entry.queue`` again (that last)."""
        for queue in (*entry.pools, entry.queue):
            self._send("add_consumer", entry.worker, queue)

    def _send(self, command: str, worker: str, queue: str) -> None:
        if self.app is None:
            return
        try:
            self.app.control.broadcast(
                command, arguments={"queue": queue}, destination=[worker], reply=False
            )
        except Exception as exc:  # the worker's own enforcement will catch up
            self._warn("rfqueue: remote control %s to %s failed: %r", command, worker, exc)
