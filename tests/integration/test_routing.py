"""Routing on a real fleet: fair shares, send_task by name, chains published from workers."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from celery import Celery, chain

import rfqueue
from rfqueue.control import RemoteControl
from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.integration.conftest import nodename, wait_for_seqs

pytestmark = pytest.mark.integration


def wait_until_routable(app: Any, *workers: str) -> None:
    """Wait until this process's router sees every worker up."""
    from rfqueue.settings import Settings
    from rfqueue.table.registry import snapshot_for

    snapshot = snapshot_for(Settings.load(app.conf))
    snapshot.ensure_started()
    queues = {f"rfqueue.{w}" for w in workers}
    wait_for(lambda: queues <= set(snapshot.up_queues), 10, what=f"{workers} routable")


def round_robin_producer(redis_server: RedisServer) -> Celery:
    """A producer app like the reference one, with the round_robin policy."""
    producer = Celery("rr", broker=redis_server.url, set_as_current=False)
    producer.conf.update(rfqueue.recommended_config(redis_server.url), task_ignore_result=True)
    rfqueue.install(producer, policy="round_robin")
    return producer


def test_round_robin_gives_three_workers_300_tasks_in_fair_shares(
    three_workers: Fleet, redis_client: Any, redis_server: RedisServer
):
    # Given three idle workers that a round robin producer sees up
    producer = round_robin_producer(redis_server)
    names = [nodename(n) for n in ("w1", "w2", "w3")]
    wait_until_routable(producer, *names)

    # When 300 tasks are sent the ordinary Celery way
    for seq in range(300):
        producer.send_task("workers.tasks.record", args=(seq, time.time()))

    # Then every task ran once, from its worker's dedicated queue, each worker its third
    lines = wait_for_seqs(redis_client, set(range(300)), timeout=60)
    assert len(lines) == 300
    assert all(line["queue"] == f"rfqueue.{line['worker']}" for line in lines)
    shares = Counter(line["worker"] for line in lines)
    assert set(shares) == set(names)
    assert all(95 <= shares[n] <= 105 for n in names), shares


def test_the_default_pull_policy_lets_every_worker_take_from_the_pool(
    three_workers: Fleet, redis_client: Any, app: Any
):
    # Given three idle workers that the reference app (the default policy, pull) sees up
    from workers.tasks import record

    names = [nodename(n) for n in ("w1", "w2", "w3")]
    wait_until_routable(app, *names)

    # When 300 tasks of 10 ms are sent the ordinary Celery way
    for seq in range(300):
        record.delay(seq, time.time(), 0.01)

    # Then every task ran once and every worker took a share of the pool's queue; each
    # ran as if from its own queue (rfqueue readdresses what a worker takes from its pool)
    lines = wait_for_seqs(redis_client, set(range(300)), timeout=60)
    assert len(lines) == 300
    assert all(line["queue"] == f"rfqueue.{line['worker']}" for line in lines)
    shares = Counter(line["worker"] for line in lines)
    assert set(shares) == set(names), shares


def test_send_task_by_name_and_chains_are_routed(three_workers: Fleet, redis_client: Any, app: Any):
    # Given three workers, one of them paused
    from rfqueue.settings import Settings
    from rfqueue.table.entry import Reason
    from rfqueue.table.registry import snapshot_for

    names = [nodename(n) for n in ("w1", "w2", "w3")]
    wait_until_routable(app, *names)
    snapshot = snapshot_for(Settings.load(app.conf))
    snapshot.table.pause(names[1], 60, Reason.MANUAL)
    wait_for(lambda: f"rfqueue.{names[1]}" not in snapshot.up_queues, 5, what="pause seen")
    # (the default policy, pull, sends them to the celery queue: w2 must have left it; a
    # full run once saw one task on w2, sent before its enforcer cancelled the pool queue)
    control = RemoteControl(app)
    wait_for(lambda: "celery" not in (control.consumed(names[1]) or ["celery"]), 15,
             what="w2 out of the celery queue")  # fmt: skip

    # When tasks are sent by name, and as chains whose later steps are published by workers
    for seq in range(30):
        app.send_task("workers.tasks.record", args=(seq,))
    for seq in range(100, 130, 2):
        chain(
            app.signature("workers.tasks.record", args=(seq,), immutable=True),
            app.signature("workers.tasks.record", args=(seq + 1,), immutable=True),
        ).delay()

    # Then all ran, on up workers only: the router worked inside the worker processes too
    expected = set(range(30)) | set(range(100, 130))
    lines = wait_for_seqs(redis_client, expected, timeout=60)
    ran_on = Counter(line["worker"] for line in lines)
    assert names[1] not in ran_on, ran_on
    assert ran_on[names[0]] > 0 and ran_on[names[2]] > 0


def test_producers_that_may_not_create_queues_reach_the_workers(
    fleet: Fleet, redis_client: Any, redis_server: RedisServer
) -> None:
    # Given one worker, and two producer apps in this process, one of them with
    # task_create_missing_queues=False (as Celery's own integration suite runs)
    fleet.start_worker("w1", "--concurrency", "1")
    fleet.wait_ready("w1")
    producers = []
    for create_missing in (True, False):
        producer = Celery(f"producer-{create_missing}", broker=redis_server.url,
                          set_as_current=False)  # fmt: skip
        producer.conf.update(rfqueue.recommended_config(redis_server.url))
        producer.conf.update(task_create_missing_queues=create_missing, task_ignore_result=True)
        rfqueue.install(producer)
        producers.append(producer)
    wait_until_routable(producers[0], nodename("w1"))

    # When each sends tasks by name
    for seq in range(10):
        producers[seq % 2].send_task("workers.tasks.record", (seq, time.time()))

    # Then the worker ran them all, from its own queue
    lines = wait_for_seqs(redis_client, set(range(10)), timeout=30)
    assert {(line["worker"], line["queue"]) for line in lines} == {
        (nodename("w1"), f"rfqueue.{nodename('w1')}")
    }
