"""The audit ledger: one JSON line per task execution, so a run can be reconciled.

A ``record`` task (the demo's, and the reference deployment's ``workers.tasks.record``)
appends ``{seq, worker, queue, sent, done}`` to a Redis list in the table's Redis. The
demo's monitor, its report and the test suite read it to say who ran what, how late,
and whether anything was lost or ran twice.

``LEDGER_REDIS_URL`` puts the ledger in another Redis. A test that fails the table's
Redis over keeps its ledger apart: Redis replicates asynchronously, and a line only the
killed master held would vanish with it although its task ran.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from rfqueue.settings import Settings

#: the default ledger list (the demo uses its namespace's ``Keys.ledger``)
LEDGER = "rfqueue:ledger"
#: the environment variable naming the ledger's Redis, when not the table's
LEDGER_REDIS_URL = "LEDGER_REDIS_URL"


@cache
def ledger_client(app: Any, patient: bool = True) -> redis.Redis:
    """One client per process and app for the table's Redis, where the ledger lives.

    A patient client's calls retry for about 20 s, so a task that ran during a short
    Redis restart still gets its line written instead of failing. A producer's is
    not: it reports a broken Redis at once.
    """
    settings = Settings.load(app.conf)
    url = os.environ.get(LEDGER_REDIS_URL, "")
    if url:
        settings = settings.replace(redis_url=url, sentinel_master="")
    if not patient:
        return settings.redis_client()
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=25)
    return settings.redis_client(
        retry=retry, retry_on_error=[redis.ConnectionError, redis.TimeoutError]
    )


def append(task: Any, ledger: str, **fields: Any) -> None:
    """One ledger line: which worker ran ``task``, from which queue, and when."""
    request = task.request
    line = {
        "worker": request.hostname,
        "queue": (request.delivery_info or {}).get("routing_key"),
        "done": time.time(),
        **fields,
    }
    ledger_client(task.app).rpush(ledger, json.dumps(line))


def record(task: Any, seq: int, sent: float, sleep: float, ledger: str) -> str:
    """The body of a ``record`` task: optionally sleep, then append its line."""
    if sleep:
        time.sleep(sleep)
    append(task, ledger, seq=seq, sent=sent)
    return str(task.request.hostname)
