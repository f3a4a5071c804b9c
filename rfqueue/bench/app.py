"""The Celery app the benchmark's workers and producers run, in two flavours.

    celery -A rfqueue.bench.app worker --hostname w1@%h

With ``BENCH_PLAIN_CELERY=1`` it is plain Celery (no rfqueue at all: the worker is
given its queues with ``-Q``); otherwise ``rfqueue.install(app)`` runs as in the
reference deployment. Everything else, configuration and tasks, is the same, so the
two sides of a comparison differ only by rfqueue.
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis
from celery import Celery

import rfqueue
from rfqueue.bench.common import PLAIN, POLLING_INTERVAL, SLOWDOWN

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")
app = Celery("rfqueue_bench", broker=broker_url, set_as_current=False)
# rfqueue's recommended settings (small prefetch, late acks), on both sides alike.
app.conf.update(
    rfqueue.recommended_config(broker_url), task_ignore_result=True, worker_hijack_root_logger=True
)
if os.environ.get(POLLING_INTERVAL):
    options = {**app.conf.broker_transport_options}
    options["polling_interval"] = float(os.environ[POLLING_INTERVAL])
    app.conf.broker_transport_options = options
if os.environ.get(PLAIN) != "1":
    rfqueue.install(app)
#: this worker's work takes this many times longer (one slow worker of an uneven fleet)
slowdown = float(os.environ.get(SLOWDOWN) or 1)


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(broker_url, socket_timeout=5)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop(n: int = 0, user: str = "") -> None:
    """Nothing: end to end measures the dispatcher and Celery, not the work."""


@app.task(name="bench.latency")  # type: ignore[untyped-decorator]
def latency(sent: float, key: str, work: float = 0.0) -> None:
    """Work for ``work`` seconds (times this worker's slowdown), then append the seconds
    since ``sent`` to the list ``key``."""
    if work:
        time.sleep(work * slowdown)
    _client().rpush(key, time.time() - sent)
