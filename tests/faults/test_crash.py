"""Workers killed with SIGKILL in the middle of long tasks: every task still runs."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from typing import Any

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.faults.conftest import scenario_line
from tests.integration.conftest import ledger, nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_routing import wait_until_routable

TASKS = 120


def mid_task(client: Any, worker: str, at_most: float = float("inf")) -> bool:
    """Whether ``worker`` has held a delivered, unacknowledged task for at least 0.1 s.

    Killing it then is a kill in the middle of a task, as the scenario says; a kill in
    the millisecond between kombu's BRPOP and its unacked record is another matter
    (see the README's Guarantees).
    """
    queue = f"rfqueue.{worker}"
    for tag, raw in client.hgetall("unacked").items():
        if json.loads(raw)[2] == queue:
            since = client.zscore("unacked_index", tag)
            # at_most: early enough in the task that a kill on a slow box still finds it
            # running (a kill after its ack leaves nothing to put back)
            if since is not None and 0.1 <= time.time() - since <= at_most:
                return True
    return False


def held_for(client: Any, seconds: float) -> int:
    """How many delivered tasks have been held unacknowledged for at least ``seconds``."""
    return len(client.zrangebyscore("unacked_index", "-inf", time.time() - seconds))


def state_of(redis_server: RedisServer, worker: str) -> tuple[str, str | None]:
    status = json.loads(rfqueue_cli(redis_server, "status", "--json").stdout)
    row = {r["worker"]: r for r in status["workers"]}[worker]
    return row["state"], row["reason"]


def test_kill_9_twice_in_one_run_loses_nothing(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given three workers (one pool process each) busy with 120 tasks of 0.4 s
    names = ("w1", "w2", "w3")
    for name in names:
        fleet.start_worker(name, "--concurrency", "1")
    for name in names:
        fleet.wait_ready(name)
    w1 = nodename("w1")
    wait_until_routable(app, *(nodename(n) for n in names))
    for seq in range(TASKS):
        record.apply_async(kwargs={"seq": seq, "sent": time.time(), "sleep": 0.4})

    # When w1 is killed with SIGKILL while it runs a task (its whole process group)
    wait_for(lambda: len(ledger(redis_client)) >= 10, 30, what="work under way")
    wait_for(lambda: mid_task(redis_client, w1, 0.2), 30, interval=0.02, what="w1 mid-task")
    fleet.workers.pop("w1").kill()
    killed_at = time.monotonic()

    # Then the survivors mark it down for want of a heartbeat (timeout 3 s in tests)
    wait_for(
        lambda: state_of(redis_server, w1) == ("down", "heartbeat"),
        15,
        interval=0.2,
        what="w1 marked down",
    )
    down_after = time.monotonic() - killed_at
    assert down_after < 3 + 3, f"w1 marked down {down_after:.1f} s after the kill"

    # When w1 comes back, and later w2 is killed and restarted at once (never silent
    # long enough to be called dead: it takes back its own unacked task when it starts)
    fleet.start_worker("w1", "--concurrency", "1")
    fleet.wait_ready("w1")
    wait_for(lambda: len(ledger(redis_client)) >= 50, 60, what="more work done")
    w2_mid_task = lambda: mid_task(redis_client, nodename("w2"), 0.2)  # noqa: E731
    wait_for(w2_mid_task, 30, interval=0.02, what="w2 mid-task")
    fleet.workers.pop("w2").kill()
    fleet.start_worker("w2", "--concurrency", "1")
    fleet.wait_ready("w2")

    # Then every task completes, long before kombu's visibility timeout (an hour)
    lines = wait_for_seqs(redis_client, set(range(TASKS)), 90)
    runs = Counter(line["seq"] for line in lines)
    twice = sum(1 for n in runs.values() if n > 1)
    scenario_line(
        "kill -9",
        TASKS,
        len(runs),
        twice,
        f"SIGKILL of w1 (marked down after {down_after:.1f} s), then of w2 (restarted at once)",
    )
    assert len(runs) == TASKS
    # And each killed worker's unacked task was put back by rfqueue, not by the timeout:
    # by the survivors ("restored") or by the worker itself when it restarted ("took back")
    logs = "".join(path.read_text() for path in fleet.workdir.glob("worker-*.log"))
    put_back = re.findall(r"rfqueue: (?:restored|took back) (\d+) unacked", logs)
    assert sum(map(int, put_back)) >= 2, put_back


def test_kill_9_of_a_worker_mid_task_taken_from_the_pool_queue(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    # Given two workers of the celery pool and the default policy (pull): tasks of 1.5 s
    # wait in the pool's own queue, which both consume
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1")
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    w1 = nodename("w1")
    wait_until_routable(app, w1, nodename("w2"))
    tasks = 6
    for seq in range(tasks):
        record.apply_async(kwargs={"seq": seq, "sent": time.time(), "sleep": 1.5})
    assert redis_client.llen("celery") > 0 and redis_client.llen(f"rfqueue.{w1}") == 0

    # When w1 is killed with SIGKILL while it runs a task it took from the pool queue
    # (each worker holds one unacknowledged task at a time: prefetch 1, late acks)
    wait_for(lambda: held_for(redis_client, 0.1) == 2, 30, interval=0.02, what="both mid-task")
    fleet.workers.pop("w1").kill()

    # Then every task completes exactly once, long before kombu's visibility timeout
    lines = wait_for_seqs(redis_client, set(range(tasks)), 60)
    runs = Counter(line["seq"] for line in lines)
    scenario_line("kill -9 (pull)", tasks, len(runs), sum(n > 1 for n in runs.values()),
                  "SIGKILL of w1 mid-task, the task taken from the pool queue")  # fmt: skip
    assert runs == {seq: 1 for seq in range(tasks)}
    # And the survivor put w1's unacked task back (to the pool queue)
    logs = fleet.workdir.joinpath("worker-w2.log").read_text()
    assert re.search(r"rfqueue: restored 1 unacked tasks of a dead worker to celery", logs), logs
