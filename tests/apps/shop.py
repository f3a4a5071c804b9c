"""A shop's Celery app, written as a team would that never saw ``workers/``.

Its own task names, declared queues and routes (``shop.resize`` to the ``images`` pool,
a queue bound to a topic exchange), late acks,
prefetch 1, JSON, retries on ``OSError``; rfqueue is one ``install`` call. Each worker
reads its build and its host from the environment, as the workers of a real fleet
differ: ``SHOP_SLOW`` multiplies every task's time (older hardware), ``SHOP_LEAN=1``
leaves out ``shop.report`` (another build), ``SHOP_BROKEN=1`` fails every task with
``OSError`` (a full disk). Every attempt appends a JSON line to the Redis list
``shop:ledger`` on the broker: task, number, worker, sent, done, ok.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery import Celery, Task
from kombu import Exchange, Queue

import rfqueue

LEDGER = "shop:ledger"
SLOW = float(os.environ.get("SHOP_SLOW", "1"))
LEAN = os.environ.get("SHOP_LEAN") == "1"
BROKEN = os.environ.get("SHOP_BROKEN") == "1"

app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    # Declared queues, the images pool behind a topic exchange as a media team would
    task_queues=(
        Queue("celery"),
        Queue("images", Exchange("media", type="topic"), routing_key="media.images.#"),
    ),
    task_routes={"shop.resize": {"queue": "images", "routing_key": "media.images.resize"}},
)
rfqueue.install(app)

_ledger: redis.Redis | None = None


def work(task: Task, n: int, sent: float, seconds: float) -> None:
    """Take ``seconds`` (times SLOW), or fail at once on a broken host; log the attempt."""
    global _ledger
    if _ledger is None:
        _ledger = redis.Redis.from_url(app.conf.broker_url)
    if not BROKEN:
        time.sleep(seconds * SLOW)
    line = {"task": task.name, "n": n, "worker": task.request.hostname, "sent": sent,
            "done": time.time(), "ok": not BROKEN}  # fmt: skip
    _ledger.rpush(LEDGER, json.dumps(line))
    if BROKEN:
        raise OSError(28, "No space left on device")


RETRY: dict[str, Any] = {
    "bind": True,
    "autoretry_for": (OSError,),
    "max_retries": 20,
    "default_retry_delay": 0.1,
}


@app.task(name="shop.checkout", **RETRY)
def checkout(self: Task, n: int, sent: float) -> None:
    work(self, n, sent, 0.01)


@app.task(name="shop.resize", **RETRY)
def resize(self: Task, n: int, sent: float) -> None:
    work(self, n, sent, 0.05)


if not LEAN:

    @app.task(name="shop.report", **RETRY)
    def report(self: Task, n: int, sent: float) -> None:
        work(self, n, sent, 0.4)
