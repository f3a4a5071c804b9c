"""The demo's Celery app: rfqueue's recommended settings and one task that records who ran it.

    celery -A rfqueue.demo.app worker --hostname demo1@%h

It ships with the package, so ``rfqueue demo`` runs from an installed wheel alone.
Configuration comes from the environment: ``CELERY_BROKER_URL`` and ``RFQUEUE_*``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

import rfqueue
from rfqueue.demo import ledger as audit

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")

app = Celery("rfqueue_demo", broker=broker_url, set_as_current=False)
app.conf.update(rfqueue.recommended_config(broker_url), task_ignore_result=True)
# Its workers consume this queue (``-Q``), never the `celery` queue of a shared Redis: it is
# the pool the demo's tasks are routed in (rfqueue.demo.services.DEMO_QUEUE).
app.conf.task_default_queue = "rfqueue-demo"
rfqueue.install(app)


@app.task(name="rfqueue.demo.record", bind=True)  # type: ignore[untyped-decorator]
def record(
    self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = audit.LEDGER
) -> str:
    """Optionally sleep, then append ``{seq, worker, queue, sent, done}`` to ``ledger``."""
    return audit.record(self, seq, sent, sleep, ledger)
