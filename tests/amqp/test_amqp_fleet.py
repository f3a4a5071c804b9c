"""Real workers and beat on RabbitMQ, the failure table in Redis: every promise still holds.

The router, the workers' self-enforcement, the chaos job and the stranded-task rescue
are the same code as on Redis; only the broker calls differ (rfqueue/brokers/amqp.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from rfqueue.brokers.amqp import AmqpBroker
from rfqueue.demo.fleet import Fleet, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.amqp.conftest import rabbitmqctl_output, start_producer
from tests.faults.conftest import scenario_line
from tests.integration.conftest import ROOT, ledger, nodename, wait_for_seqs

W1, W2 = nodename("w1"), nodename("w2")
Q1, Q2 = f"rfqueue.{W1}", f"rfqueue.{W2}"
#: the pool's shared queue (the default queue), where the default policy, pull, sends tasks
POOL = "celery"
#: a push policy: each task goes to one up worker's own queue, in turn
PUSH = "round_robin"

CHAOS = {
    "RFQUEUE_CHAOS_ENABLED": "true",
    "RFQUEUE_CHAOS_INTERVAL": "0.5",
    "RFQUEUE_CHAOS_PROBABILITY": "1",
    "RFQUEUE_CHAOS_MIN_DURATION": "1",
    "RFQUEUE_CHAOS_MAX_DURATION": "2",
    "RFQUEUE_MAX_PAUSED": "1",
    "RFQUEUE_MIN_UP": "1",
}


def start_two(fleet: Fleet, redis_client: Any) -> FailureTable:
    """w1 and w2, one pool process each, both up in the table."""
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1")
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    table = FailureTable(redis_client, "rfqueue")
    wait_for(lambda: all(state(table, w) is State.UP for w in (W1, W2)), 15, what="both up")
    return table


def state(table: FailureTable, worker: str) -> State | None:
    entry = table.entries().get(worker)
    return entry.state if entry else None


def cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "rfqueue")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=fleet.env, timeout=30)


def inspect(fleet: Fleet, worker: str, command: str) -> list[Any]:
    """``celery inspect <command>``'s reply from ``worker``, over RabbitMQ's remote control."""
    exe = os.path.join(os.path.dirname(sys.executable), "celery")
    argv = [exe, "-A", "workers.app", "inspect", command, "-d", worker, "-j", "-t", "3"]
    out = subprocess.run(argv, capture_output=True, text=True, env=fleet.env, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    reply: list[Any] = json.loads(out.stdout)[worker]
    return reply


def active_queues(fleet: Fleet, worker: str) -> list[str]:
    return [q["name"] for q in inspect(fleet, worker, "active_queues")]


def running_seqs(fleet: Fleet, worker: str) -> list[int]:
    """The seqs of the ``record`` tasks ``worker`` is running (``celery inspect active``)."""
    return [task["kwargs"]["seq"] for task in inspect(fleet, worker, "active")]


def produce(
    fleet: Fleet, count: int, ledger_key: str, sleep: float = 0.0, policy: str | None = None
) -> None:
    producer = start_producer(fleet, count, sleep=sleep, ledger=ledger_key, policy=policy)
    wait_for(lambda: not producer.alive(), 60, what="the producer to finish")
    assert producer.proc.returncode == 0, producer.log()


def test_routing_and_pausing_work_over_rabbitmq(amqp_fleet: Fleet, redis_client: Any) -> None:
    # Given two workers on RabbitMQ, both up in the Redis table
    start_two(amqp_fleet, redis_client)

    # When w1 is paused with the CLI
    out = cli(amqp_fleet, "pause", W1, "--for", "60")
    assert out.returncode == 0, out.stderr

    # Then w1 consumes neither its own queue nor the pool's (Celery's own inspect says
    # so, over AMQP), while w2 consumes both
    wait_for(
        lambda: {Q1, POOL}.isdisjoint(active_queues(amqp_fleet, W1)),
        15,
        what="w1 to stop consuming",
    )
    assert {Q2, POOL} <= set(active_queues(amqp_fleet, W2))
    # And 40 tasks sent the ordinary way (the default policy, pull) all run on w2
    produce(amqp_fleet, 40, "ledger:paused")
    lines = wait_for_seqs(redis_client, set(range(40)), 30, key="ledger:paused")
    assert Counter(line["worker"] for line in lines) == {W2: 40}

    # When w1 is resumed, it consumes both again
    assert cli(amqp_fleet, "resume", W1).returncode == 0
    wait_for(
        lambda: {Q1, POOL} <= set(active_queues(amqp_fleet, W1)), 15, what="w1 to consume again"
    )
    # And under pull both take from the pool's queue again
    produce(amqp_fleet, 40, "ledger:pulled")
    lines = wait_for_seqs(redis_client, set(range(40)), 30, key="ledger:pulled")
    assert Counter(line["worker"] for line in lines).keys() == {W1, W2}
    # And a push policy (round robin; fair shares are its promise, not pull's) gives w1
    # exactly its half of the next 40, through its own queue
    produce(amqp_fleet, 40, "ledger:resumed", policy=PUSH)
    lines = wait_for_seqs(redis_client, set(range(40)), 30, key="ledger:resumed")
    assert Counter(line["worker"] for line in lines) == {W1: 20, W2: 20}
    assert all(line["queue"] == f"rfqueue.{line['worker']}" for line in lines)


def test_tasks_waiting_for_a_paused_worker_move_over_rabbitmq(
    amqp_fleet: Fleet, amqp_url: str, redis_client: Any
) -> None:
    # Given a backlog at both workers: 60 tasks of 0.2 s, 30 in each one's own queue
    # (sent with a push policy: under the default, pull, they would wait in the pool's
    # shared queue, which a paused worker simply leaves to the other)
    table = start_two(amqp_fleet, redis_client)
    produce(amqp_fleet, 60, "ledger:rescue", sleep=0.2, policy=PUSH)
    broker = AmqpBroker(amqp_url, socket_timeout=2)
    try:
        assert broker.depths([Q1])[Q1] >= 10

        # When w1 is paused
        assert cli(amqp_fleet, "pause", W1, "--for", "60").returncode == 0
        paused_at = next(e.time for e in table.events(20) if e.action == "pause")

        # Then its queue is empty within 2 s: consumed with basic.get, republished with
        # confirms (to the pool's queue, under the workers' policy, pull), acknowledged
        wait_for(lambda: broker.depths([Q1])[Q1] == 0, 2, interval=0.02, what="w1's queue empty")
        emptied_after = time.time() - paused_at
    finally:
        broker.close()

    # And every task ran exactly once, w1 running at most the one it held
    lines = wait_for_seqs(redis_client, set(range(60)), 60, key="ledger:rescue")
    runs = Counter(line["seq"] for line in lines)
    late_on_w1 = [x for x in lines if x["worker"] == W1 and x["done"] > paused_at + 0.5]
    routed = redis_client.hgetall("ledger:rescue:routed")
    moved = [x for x in lines if x["worker"] == W2 and routed[str(x["seq"])] == Q1]
    scenario_line(
        "rescue over AMQP",
        60,
        len(runs),
        sum(n > 1 for n in runs.values()),
        f"w1 paused with a backlog; its queue empty {emptied_after:.2f} s later",
    )
    assert set(runs.values()) == {1}, runs
    assert len(late_on_w1) <= 1, late_on_w1
    assert Counter(routed.values()) == {Q1: 30, Q2: 30}
    # And w2 ran the rest of w1's backlog, each from the pool's queue it was moved to
    assert moved and {x["queue"] for x in moved} == {POOL}, moved


def test_a_worker_killed_mid_task_loses_nothing_over_rabbitmq(
    amqp_fleet: Fleet, amqp_url: str, redis_client: Any
) -> None:
    # Given 20 tasks of 0.5 s sent the ordinary way (the default policy, pull: to the
    # pool's queue, which w1 and w2 both consume)
    table = start_two(amqp_fleet, redis_client)
    produce(amqp_fleet, 20, "ledger:kill", sleep=0.5)

    # When w1 is killed (SIGKILL, its whole process group) while it runs a task
    vhost = amqp_url.rsplit("/", 1)[1]
    held = wait_for(lambda: running_seqs(amqp_fleet, W1), 15, interval=0.1, what="w1 mid-task")
    assert unacked(vhost, POOL) >= 1
    amqp_fleet.workers.pop("w1").kill()
    killed_at = time.monotonic()
    # (what w1 finished between the inspect and the kill is done; the rest it never did)
    unfinished = set(held) - {x["seq"] for x in ledger(redis_client, "ledger:kill")}

    # Then the table marks w1 down for want of a heartbeat, and RabbitMQ requeues what
    # w1 held (unacknowledged when its connection was lost), so w2 runs it
    wait_for(lambda: state(table, W1) is State.DOWN, 15, interval=0.1, what="w1 marked down")
    down_after = time.monotonic() - killed_at
    lines = wait_for_seqs(redis_client, set(range(20)), 60, key="ledger:kill")
    runs = Counter(line["seq"] for line in lines)
    assert all(x["worker"] == W2 for x in lines if x["seq"] in unfinished), (held, lines)
    scenario_line(
        "kill -9 over AMQP",
        20,
        len(runs),
        sum(n > 1 for n in runs.values()),
        f"SIGKILL of w1 mid-task (marked down after {down_after:.1f} s)",
    )
    assert len(runs) == 20
    assert down_after < 3 + 3


def test_the_chaos_job_pauses_workers_over_rabbitmq_and_no_task_is_lost(
    amqp_fleet: Fleet, redis_client: Any
) -> None:
    # Given two workers, and beat ticking the chaos job every 0.5 s (pauses of 1-2 s)
    table = start_two(amqp_fleet, redis_client)
    amqp_fleet.start_beat(env=CHAOS)
    wait_for(lambda: chaos_pauses(table), 30, what="a first chaos pause")

    # When 150 tasks are sent over 5 s
    producer = start_producer(amqp_fleet, 150, rate=30, ledger="ledger:chaos")
    wait_for(lambda: not producer.alive(), 60, what="the producer to finish")

    # Then every task completes, while chaos paused the workers one at a time
    lines = wait_for_seqs(redis_client, set(range(150)), 60, key="ledger:chaos")
    runs = Counter(line["seq"] for line in lines)
    # And, the chaos job picking at random, it pauses each of them sooner or later
    pauses = wait_for(
        lambda: (found := chaos_pauses(table)) and {e.worker for e in found} == {W1, W2} and found,
        30,
        what="chaos to have paused both workers",
    )
    scenario_line(
        "chaos over AMQP",
        150,
        len(runs),
        sum(n > 1 for n in runs.values()),
        f"chaos paused w1 and w2 {len(pauses)} times in all, one at a time, around 150 tasks",
    )
    assert len(runs) == 150
    assert Counter(line["worker"] for line in lines).keys() == {W1, W2}


def chaos_pauses(table: FailureTable) -> list[Any]:
    return [e for e in table.events(500) if e.action == "pause" and e.reason == "chaos"]


def unacked(vhost: str, queue: str) -> int:
    """Messages of ``queue`` delivered and not yet acknowledged, as RabbitMQ counts them."""
    rows = rabbitmqctl_output("list_queues", "-p", vhost, "name", "messages_unacknowledged")
    return sum(int(n) for name, n in rows if name == queue)
