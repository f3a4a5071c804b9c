"""Example tasks. ``record`` writes who ran it to a ledger list, so runs can be audited."""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import redis

from rfqueue.settings import Settings
from workers.app import app

#: where ``record`` appends one JSON line per execution
LEDGER = "rfqueue:ledger"


@cache
def ledger_client() -> redis.Redis:
    """One client per process for the table's Redis, where the ledger lives."""
    return Settings.load(app.conf).redis_client()


@app.task(name="workers.tasks.record", bind=True)
def record(self: Any, seq: int, sent: float = 0.0, sleep: float = 0.0, ledger: str = LEDGER) -> str:
    """Optionally sleep, then append ``{seq, worker, queue, sent, done}`` to ``ledger``."""
    if sleep:
        time.sleep(sleep)
    queue = (self.request.delivery_info or {}).get("routing_key")
    line = {
        "seq": seq,
        "worker": self.request.hostname,
        "queue": queue,
        "sent": sent,
        "done": time.time(),
    }
    ledger_client().rpush(ledger, json.dumps(line))
    return str(self.request.hostname)


@app.task(name="workers.tasks.add")
def add(x: int, y: int) -> int:
    """The classic: adds two numbers."""
    return x + y
