"""Batch dispatch on a real fleet: every task runs once, routed like apply_async, none to a
paused worker, and the routed counts reach Redis."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from celery import Celery
from kombu.exceptions import EncodeError

import rfqueue
from rfqueue import DispatchError, dispatch_many
from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.keys import Keys
from rfqueue.routing.router import Router
from rfqueue.table.entry import Reason
from tests.integration.conftest import active_queues, nodename, wait_for_seqs

pytestmark = pytest.mark.integration


def rfqueue_router(app: Any) -> Router:
    router = next(r for r in app.conf.task_routes if isinstance(r, Router))
    router.snapshot.ensure_started()
    return router


def test_every_task_runs_once_shared_out_and_never_on_a_paused_worker(
    three_workers: Fleet, redis_client: Any, redis_server: RedisServer, app: Any
) -> None:
    # Given three workers the router sees up, then w2 paused
    from workers.tasks import record

    names = [nodename(n) for n in ("w1", "w2", "w3")]
    router = rfqueue_router(app)
    snapshot = router.snapshot
    queues = {f"rfqueue.{n}" for n in names}
    wait_for(lambda: queues <= set(snapshot.up_queues), 15, what="three workers routable")
    snapshot.table.pause(names[1], 120, Reason.MANUAL)
    wait_for(lambda: f"rfqueue.{names[1]}" not in snapshot.up_queues, 5, what="pause seen")
    # (the default policy, pull, sends them to the celery queue: w2 must have left it)
    wait_for(lambda: "celery" not in active_queues(redis_server, names[1]), 15, what="w2 out")
    before = router.routed.totals()

    # When 200 record tasks are dispatched in batches of 64
    items = [{"seq": seq, "sent": time.time()} for seq in range(200)]
    ids = dispatch_many(record, items, batch_size=64)

    # Then 200 distinct ids came back, and every task ran exactly once, taken from the
    # celery queue (recorded under the worker's own) by w1 or w3, both sharing the work:
    # the real workers accepted Celery's message format
    assert len(set(ids)) == 200
    lines = wait_for_seqs(redis_client, set(range(200)), timeout=60)
    assert len(lines) == 200
    assert all(line["queue"] == f"rfqueue.{line['worker']}" for line in lines)
    shares = Counter(line["worker"] for line in lines)
    assert set(shares) == {names[0], names[2]} and min(shares.values()) >= 40, shares

    # And the router counted them, and flushed the counts to Redis from its thread
    routed = router.routed.totals() - before
    assert routed == {"celery": 200}
    key = Keys(router.settings.namespace).routed

    def flushed() -> bool:
        in_redis = {q: int(n) for q, n in redis_client.hgetall(key).items()}
        return all(in_redis.get(q, 0) >= n for q, n in routed.items())

    wait_for(flushed, 10, what="routed counts in Redis")


def test_a_batch_lands_whole_or_says_what_landed_on_a_real_redis(
    redis_client: Any, redis_server: RedisServer
) -> None:
    # Given a producer app and two registered workers (processes not needed: nothing runs)
    producer = Celery("batch", broker=redis_server.url, set_as_current=False)
    producer.conf.update(rfqueue.recommended_config(redis_server.url), task_ignore_result=True)
    rfqueue.install(producer, policy="round_robin")
    task = producer.task(name="workers.tasks.record", shared=False)(never_run)
    router = rfqueue_router(producer)
    queues = [f"rfqueue.{w}" for w in ("x1@h", "x2@h")]

    def fresh() -> None:  # beat, so that the short test heartbeat timeout never bites
        for queue in queues:
            router.snapshot.table.heartbeat(queue.removeprefix("rfqueue."), queue)
        assert router.snapshot.refresh() and set(queues) <= set(router.snapshot.up_queues)

    for queue in queues:
        router.snapshot.table.register(queue.removeprefix("rfqueue."), queue)
    fresh()

    # When a batch holds one item JSON cannot encode, Then nothing at all lands
    with pytest.raises(EncodeError):
        dispatch_many(task, [(n,) for n in range(99)] + [(object(),)])
    assert sum(redis_client.llen(q) for q in queues) == 0

    # When Redis refuses one queue inside the transaction (a key of another type; the
    # queues were declared by an earlier batch), Then the other lands and the error says so
    fresh()
    dispatch_many(task, [(0,), (1,)])
    redis_client.delete(*queues)
    redis_client.set(queues[1], "not a list")
    fresh()
    with pytest.raises(DispatchError, match="5 of 10 published") as raised:
        dispatch_many(task, [(n,) for n in range(10)])
    landed = [json.loads(raw)["headers"]["id"] for raw in redis_client.lrange(queues[0], 0, -1)]
    assert sorted(raised.value.published) == sorted(landed) and len(landed) == 5
    assert len(raised.value.unpublished) == 5


def never_run(seq: int) -> None:
    """Published only: no worker consumes the queues of this test."""
