"""Example tasks. ``record`` writes who ran it to a ledger list, so runs can be audited."""

from __future__ import annotations

import os
import time
from typing import Any

from rfqueue.demo import ledger as audit
from workers.app import app

#: where ``record`` appends one JSON line per execution
LEDGER = audit.LEDGER

#: ``WORKERS_FAIL=1``: every ``record`` this worker runs raises after its ledger line, as
#: on a host with a full disk or a broken dependency (the outlier-ejection tests)
FAILS = os.environ.get("WORKERS_FAIL", "") == "1"


class BrokenWorker(RuntimeError):
    """Raised by every ``record`` of a worker started with ``WORKERS_FAIL=1``."""


def ledger_client(patient: bool = True) -> Any:
    """The reference app's client for the ledger's Redis (see :mod:`rfqueue.demo.ledger`)."""
    return audit.ledger_client(app, patient)


@app.task(name="workers.tasks.record", bind=True)
def record(self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = LEDGER) -> str:
    """Optionally sleep, then append ``{seq, worker, queue, sent, done}`` to ``ledger``."""
    result = audit.record(self, seq, sent, sleep, ledger)
    if FAILS:
        raise BrokenWorker(f"{self.request.hostname} fails every task (WORKERS_FAIL=1)")
    return result


@app.task(name="workers.tasks.flaky", bind=True, max_retries=5)
def flaky(self: Any, seq: int, fails: int = 1, hold: str = "", ledger: str = LEDGER) -> str:
    """Record the attempt and ask for a retry until ``fails`` attempts have failed.

    With ``hold`` the first attempt waits (up to 60 s) until that Redis key exists, so a
    test can change the fleet while the task runs.
    """
    deadline = time.monotonic() + 60
    while hold and not self.request.retries and time.monotonic() < deadline:
        if ledger_client().exists(hold):
            break
        time.sleep(0.05)
    attempt = self.request.retries
    audit.append(self, ledger, seq=seq, attempt=attempt)
    if attempt < fails:
        raise self.retry(countdown=0)
    return str(self.request.hostname)


@app.task(name="workers.tasks.add")
def add(x: int, y: int) -> int:
    """The classic: adds two numbers."""
    return x + y
