"""Example tasks. ``record`` writes who ran it to a ledger list, so runs can be audited."""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from rfqueue.settings import Settings
from workers.app import app

#: where ``record`` appends one JSON line per execution
LEDGER = "rfqueue:ledger"


@cache
def ledger_client(patient: bool = True) -> redis.Redis:
    """One client per process for the table's Redis, where the ledger lives.

    A patient client's calls retry for about 20 s, so a task that ran during a short
    Redis restart still gets its line written instead of failing. The producer's is
    not: it reports a broken Redis at once.
    """
    if not patient:
        return Settings.load(app.conf).redis_client()
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=25)
    return Settings.load(app.conf).redis_client(
        retry=retry, retry_on_error=[redis.ConnectionError, redis.TimeoutError]
    )


def _append(task: Any, ledger: str, **fields: Any) -> None:
    """One ledger line: which worker ran ``task``, from which queue, and when."""
    request = task.request
    line = {
        "worker": request.hostname,
        "queue": (request.delivery_info or {}).get("routing_key"),
        "done": time.time(),
        **fields,
    }
    ledger_client().rpush(ledger, json.dumps(line))


@app.task(name="workers.tasks.record", bind=True)
def record(self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = LEDGER) -> str:
    """Optionally sleep, then append ``{seq, worker, queue, sent, done}`` to ``ledger``."""
    if sleep:
        time.sleep(sleep)
    _append(self, ledger, seq=seq, sent=sent)
    return str(self.request.hostname)


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
    _append(self, ledger, seq=seq, attempt=attempt)
    if attempt < fails:
        raise self.retry(countdown=0)
    return str(self.request.hostname)


@app.task(name="workers.tasks.add")
def add(x: int, y: int) -> int:
    """The classic: adds two numbers."""
    return x + y
