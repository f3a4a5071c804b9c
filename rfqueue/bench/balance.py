"""Balance: how evenly each policy shares 10,000 tasks among up workers.

Four workers are registered and up, none consumes: each policy's tasks are published
for real with ``dispatch_many`` (so ``least_loaded`` and ``p2c`` read true, growing
queue depths through their samplers) and then counted per queue. The row's ratio is
the fullest queue over the mean (1.0 is perfect); for ``weighted`` each count is
first divided by its worker's share. The baseline column shows what a perfect split
would put in each queue.

The rescue spread rows pause b4 with a backlog of tasks in its queue and let one
rescuer round move them, choosing with ``least_loaded`` or ``p2c`` (started as a
worker starts them: one depth read, then a read every ``depth_interval``); b2 and b3
hold one task more than b1 at the read. A policy that did not count its own moves
poured the whole backlog onto b1 (3000/0/0).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from rfqueue.bench.common import Bench, Row
from rfqueue.bench.publish import task_of
from rfqueue.bench.routing import rfqueue_app, stop_sampler
from rfqueue.brokers.redis import RedisBroker
from rfqueue.brokers.redis_layout import queue_depths, queue_lists
from rfqueue.demo.fleet import wait_for
from rfqueue.routing.dispatch import dispatch_many
from rfqueue.routing.policies import create_policy
from rfqueue.routing.routed import RoutedCounts
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import policy_chooser
from rfqueue.worker.rescue import Rescuer

WORKERS = ("b1@bench", "b2@bench", "b3@bench", "b4@bench")
QUEUES = tuple(f"rfqueue.{w}" for w in WORKERS)
WEIGHTS = {"b1@bench": 3, "b2@bench": 2}  # b3 and b4 weigh 1
TARGETS = {"round_robin": "<= 1.02", "p2c": "<= 1.05"}
#: tasks in the paused worker's queue when the rescuer moves them
RESCUED = 3000
#: the rescuer's policies whose spread of a rescued backlog is measured
RESCUERS = {"least_loaded": "<= 1.05", "p2c": "<= 1.1"}
POLICIES: dict[str, dict[str, Any]] = {
    "round_robin": {},
    "random": {"seed": 1},
    "p2c": {"seed": 1},
    "least_loaded": {},
    "weighted": {"weights": tuple(f"{w}={n}" for w, n in WEIGHTS.items())},
    "hash": {"hash_key": "user"},
}


def shares() -> dict[str, float]:
    """Each queue's expected share under ``weighted``."""
    weight = {f"rfqueue.{w}": WEIGHTS.get(w, 1) for w in WORKERS}
    total = sum(weight.values())
    return {q: n / total for q, n in weight.items()}


def spread(policy: str, counts: dict[str, int]) -> float:
    """Fullest queue over the mean, each count over its expected share."""
    total = sum(counts.values())
    share = shares() if policy == "weighted" else dict.fromkeys(QUEUES, 1 / len(QUEUES))
    return max(counts[q] / (share[q] * total) for q in QUEUES)


def one_policy(bench: Bench, policy: str, count: int) -> dict[str, int]:
    bench.client().delete(*(key for q in QUEUES for key in queue_lists(q)))
    app = rfqueue_app(bench.url, policy, **POLICIES[policy])
    snapshot = app.conf.task_routes[0].snapshot
    # Every router of this process shares one snapshot: it must show the four, no more.
    wait_for(lambda: set(snapshot.up_queues) == set(QUEUES), 10, what="4 workers up")
    dispatch_many(task_of(app), [{"n": n, "user": f"user-{n}"} for n in range(count)])
    counts = queue_depths(bench.client(), QUEUES)
    stop_sampler(app)
    return counts


def run(bench: Bench) -> list[Row]:
    count = bench.pick(3000, 10_000)
    bench.flush()
    table = FailureTable(bench.client())
    for worker in WORKERS:
        table.register(worker, f"rfqueue.{worker}")
    rows = []
    for policy, extra in POLICIES.items():
        counts = one_policy(bench, policy, count)
        rows.append(
            Row(
                f"balance: max/mean ({policy})",
                " ".join(str(counts[q]) for q in QUEUES),
                f"{count / len(QUEUES):,.0f} each" if policy != "weighted" else "3:2:1:1",
                spread(policy, counts),
                TARGETS.get(policy, ""),
                f"{count:,} tasks over 4 up workers" + (f", {extra}" if extra else ""),
            )
        )
    table.pause(WORKERS[3], 600, Reason.MANUAL, note="bench")
    for policy, target in RESCUERS.items():
        moved = rescue_spread(bench, table, policy, RESCUED)
        rows.append(
            Row(
                f"rescue spread: max/mean ({policy})",
                " ".join(str(moved.get(q, 0)) for q in QUEUES[:3]),
                f"{RESCUED / 3:,.0f} each",
                max(moved.values()) / (RESCUED / 3),
                target,
                f"{RESCUED:,} tasks of paused b4 moved in one round over 3 up workers",
            )
        )
    return rows


def rescue_spread(bench: Bench, table: FailureTable, policy: str, count: int) -> dict[str, int]:
    """Tasks one rescuer round moved from paused b4 to each up worker, chosen by ``policy``."""
    client = bench.client()
    client.delete(*(key for q in QUEUES for key in queue_lists(q)))
    app = Celery("bench-backlog", broker=bench.url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    app.conf.task_routes = {"bench.noop": {"queue": QUEUES[3]}}
    dispatch_many(task_of(app), [{"n": n} for n in range(count)])
    for queue in QUEUES[1:3]:
        client.lpush(queue, client.lindex(QUEUES[3], 0))
    snapshot = Snapshot(table, refresh_interval=60, heartbeat_timeout=3600)
    snapshot.refresh()
    broker = RedisBroker(client)
    chooser = create_policy(Settings(policy=policy, seed=1))
    chooser.start(snapshot, RoutedCounts(), broker.depths)
    try:
        report = Rescuer(snapshot, broker, policy_chooser(chooser), 3600).run_once()
    finally:
        getattr(chooser, "sampler").stop()  # noqa: B009  (least_loaded and p2c have one)
        app.close()
    return {target: n for (_, target), n in report.moved.items()}
