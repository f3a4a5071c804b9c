"""Balance: how evenly each policy shares 10,000 tasks among up workers.

Four workers are registered and up, none consumes: each policy's tasks are published
for real with ``dispatch_many`` (so ``least_loaded`` and ``p2c`` read true, growing
queue depths through their samplers) and then counted per queue. The row's ratio is
the fullest queue over the mean (1.0 is perfect); for ``weighted`` each count is
first divided by its worker's share. The baseline column shows what a perfect split
would put in each queue.
"""

from __future__ import annotations

from typing import Any

from rfqueue.bench.common import Bench, Row
from rfqueue.bench.publish import task_of
from rfqueue.bench.routing import rfqueue_app, stop_sampler
from rfqueue.brokers.redis_layout import queue_depths, queue_lists
from rfqueue.demo.fleet import wait_for
from rfqueue.routing.dispatch import dispatch_many
from rfqueue.table import FailureTable

WORKERS = ("b1@bench", "b2@bench", "b3@bench", "b4@bench")
QUEUES = tuple(f"rfqueue.{w}" for w in WORKERS)
WEIGHTS = {"b1@bench": 3, "b2@bench": 2}  # b3 and b4 weigh 1
TARGETS = {"round_robin": "<= 1.02", "p2c": "<= 1.05"}
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
    return rows
