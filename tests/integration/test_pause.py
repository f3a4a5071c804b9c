"""Pausing real workers: nothing reaches a paused worker, and every pause ends."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.integration.conftest import (
    active_queues,
    ledger,
    nodename,
    rfqueue_cli,
    wait_for_seqs,
)
from tests.integration.test_routing import wait_until_routable

pytestmark = pytest.mark.integration


def table_state(redis_server: RedisServer, worker: str) -> dict[str, Any]:
    out = rfqueue_cli(redis_server, "status", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["worker"]: row for row in json.loads(out.stdout)["workers"]}
    return rows[worker]


def consuming(redis_server: RedisServer, worker: str) -> bool:
    return f"rfqueue.{worker}" in active_queues(redis_server, worker)


def send(seqs: range) -> None:
    from workers.tasks import record

    for seq in seqs:
        record.delay(seq, time.time())


def test_paused_worker_gets_nothing_until_resumed_or_expired(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    w1, w2, w3 = (nodename(n) for n in ("w1", "w2", "w3"))
    wait_until_routable(app, w1, w2, w3)

    # Given w2 paused by an operator with the CLI
    out = rfqueue_cli(redis_server, "pause", w2, "--for", "60", "--reason", "test")
    assert out.returncode == 0, out.stderr
    assert table_state(redis_server, w2)["state"] == "paused"
    wait_for(lambda: not consuming(redis_server, w2), 10, interval=0.2, what="w2 cancelled")

    # When 150 tasks are sent
    send(range(150))

    # Then none ran on w2, and Celery itself reports w2 not consuming its queue
    ran = Counter(line["worker"] for line in wait_for_seqs(redis_client, set(range(150)), 60))
    assert w2 not in ran and ran[w1] + ran[w3] == 150, ran
    assert not consuming(redis_server, w2)

    # When it is resumed, it consumes again and takes its share
    assert rfqueue_cli(redis_server, "resume", w2).returncode == 0
    wait_for(lambda: consuming(redis_server, w2), 10, interval=0.2, what="w2 consuming")
    wait_until_routable(app, w2)
    send(range(150, 300))
    ran = Counter(
        line["worker"]
        for line in wait_for_seqs(redis_client, set(range(300)), 60)
        if line["seq"] >= 150
    )
    assert ran[w2] >= 40, ran

    # When w3 is paused for 4 s and left alone, the pause expires by itself
    assert rfqueue_cli(redis_server, "pause", w3, "--for", "4").returncode == 0
    until = table_state(redis_server, w3)["until"]
    wait_for(lambda: not consuming(redis_server, w3), 10, interval=0.2, what="w3 cancelled")
    wait_for(lambda: consuming(redis_server, w3), 10, interval=0.2, what="w3 back after expiry")
    assert time.time() >= until
    assert table_state(redis_server, w3)["state"] == "up"


def test_restarted_paused_worker_stays_paused_until_expiry(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    w1, w2, w3 = (nodename(n) for n in ("w1", "w2", "w3"))
    wait_until_routable(app, w1, w2, w3)

    # Given w1 paused for 10 s, then stopped cleanly
    assert rfqueue_cli(redis_server, "pause", w1, "--for", "10").returncode == 0
    until = table_state(redis_server, w1)["until"]
    three_workers.stop_worker("w1")
    row = table_state(redis_server, w1)
    assert (row["state"], row["reason"], row["until"]) == ("down", "shutdown", until)

    # When it starts again with the same command
    three_workers.start_worker("w1", "--concurrency", "1")
    three_workers.wait_ready("w1")

    # Then it comes back paused, does not consume, and gets no task
    row = table_state(redis_server, w1)
    assert (row["state"], row["until"]) == ("paused", until)
    assert not consuming(redis_server, w1)
    send(range(60))
    lines = wait_for_seqs(redis_client, set(range(60)), 60)
    # (with the pull policy what is left in the pool's queue when the pause ends is w1's too)
    while_paused = [line for line in lines if line["worker"] == w1 and line["done"] < until]
    assert while_paused == [], while_paused

    # And when the pause expires, it consumes again within a second and a half
    wait_for(
        lambda: consuming(redis_server, w1),
        until - time.time() + 10,
        interval=0.2,
        what="w1 consuming after expiry",
    )
    assert time.time() - until < 1.5 + 3  # 3 s: one `celery inspect` round trip
    send(range(60, 120))
    lines = wait_for_seqs(redis_client, set(range(120)), 60)
    assert any(line["worker"] == w1 for line in lines if line["seq"] >= 60)
    assert len(ledger(redis_client)) == 120
