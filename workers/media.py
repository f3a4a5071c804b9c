"""Media tasks: a second task module, for fleets of pools and of different task sets.

``transcode`` is routed to the ``video`` pool by the app's ``task_routes`` (workers
started with ``-Q video`` run it); ``thumbnail`` goes to the default queue, but only
workers that load this module have it (``WORKERS_SKIP=workers.media`` leaves it out).
Both record who ran them in the ledger, like ``workers.tasks.record``.
"""

from __future__ import annotations

from typing import Any

from rfqueue.demo import ledger as audit
from workers.app import app

LEDGER = audit.LEDGER


@app.task(name="workers.media.transcode", bind=True)
def transcode(
    self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = LEDGER
) -> str:
    """A task of the video pool: optionally sleep, then record who ran it."""
    return audit.record(self, seq, sent, sleep, ledger)


@app.task(name="workers.media.thumbnail", bind=True)
def thumbnail(
    self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = LEDGER
) -> str:
    """A task only some workers have: optionally sleep, then record who ran it."""
    return audit.record(self, seq, sent, sleep, ledger)
