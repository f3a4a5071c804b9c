"""Stranded tasks: what waits for a paused worker moves on, and retries go elsewhere."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from rfqueue.brokers.redis_layout import queue_depths
from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from tests.faults.conftest import scenario_line
from tests.integration.conftest import ledger, nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_routing import wait_until_routable


def depth(client: Any, worker: str) -> int:
    return queue_depths(client, [f"rfqueue.{worker}"])[f"rfqueue.{worker}"]


class EmptyWatcher(threading.Thread):
    """Notes when ``worker``'s queue is first seen empty (polled every 10 ms)."""

    def __init__(self, client: Any, worker: str) -> None:
        super().__init__(daemon=True)
        self.client, self.worker = client, worker
        self.emptied_at: float | None = None

    def run(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if depth(self.client, self.worker) == 0:
                self.emptied_at = time.time()
                return
            time.sleep(0.01)


def pause_time(client: Any, worker: str) -> float:
    """When the table took ``worker``'s latest pause (the event log's clock)."""
    events = FailureTable(client, "rfqueue").events(200)
    return next(ev.time for ev in events if ev.worker == worker and ev.action == "pause")


def test_tasks_waiting_for_a_paused_worker_move_within_a_second(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import record

    w1, w2, w3 = (nodename(n) for n in ("w1", "w2", "w3"))
    wait_until_routable(app, w1, w2, w3)

    # Given a backlog at every worker: 60 tasks of 0.3 s, 20 in each one's own queue (as a
    # push policy leaves them; the default pull policy would use the pool's shared queue)
    queues = [f"rfqueue.{w}" for w in (w1, w2, w3)]
    for seq in range(60):
        kwargs = {"seq": seq, "sent": time.time(), "sleep": 0.3}
        record.apply_async(kwargs=kwargs, queue=queues[seq % 3])
    wait_for(lambda: depth(redis_client, w1) >= 10, 10, interval=0.05, what="w1's backlog")

    # When w1 is paused (a thread watches its queue meanwhile, every 10 ms)
    watcher = EmptyWatcher(redis_server.client(), w1)
    watcher.start()
    out = rfqueue_cli(redis_server, "pause", w1, "--for", "60")
    assert out.returncode == 0, out.stderr
    paused_at = pause_time(redis_client, w1)

    # Then its queue is empty within 1 s of the pause
    watcher.join(10)
    assert watcher.emptied_at, "w1's queue was never emptied"
    emptied_after = watcher.emptied_at - paused_at
    assert emptied_after < 1.0, f"w1's queue emptied {emptied_after:.2f} s after the pause"

    # And every task ran exactly once; after the pause w1 finished at most what it held
    lines = wait_for_seqs(redis_client, set(range(60)), 60)
    runs = Counter(line["seq"] for line in lines)
    assert set(runs.values()) == {1}, runs
    late_on_w1 = [x for x in lines if x["worker"] == w1 and x["done"] > paused_at + 0.5]
    assert len(late_on_w1) <= 1, late_on_w1
    # And a moved task carries its new queue, the pool's under the pull policy: a retry
    # from there stays on a healthy worker
    assert all(x["queue"] in (f"rfqueue.{x['worker']}", "celery") for x in lines), lines
    moved = sum(1 for x in lines if x["worker"] != w1 and x["done"] > paused_at)
    scenario_line(
        "rescue",
        60,
        len(runs),
        sum(n > 1 for n in runs.values()),
        f"w1 paused with a backlog; queue empty {emptied_after * 1000:.0f} ms later",
    )
    assert moved >= 10


def test_retry_of_a_task_whose_worker_was_paused_runs_elsewhere(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    from workers.tasks import flaky

    # Given two workers and no rescue: only the router can keep the retry off w1
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1", env={"RFQUEUE_RESCUE": "false"})
    for name in ("w1", "w2"):
        fleet.wait_ready(name)
    w1, w2 = nodename("w1"), nodename("w2")
    wait_until_routable(app, w1, w2)
    # And a task started on w1 (w2 paused while it is sent), which will ask for a retry
    assert rfqueue_cli(redis_server, "pause", w2, "--for", "60").returncode == 0
    wait_for(lambda: f"rfqueue.{w2}" not in _up(app), 5, what="router to skip w2")
    flaky.apply_async(kwargs={"seq": 1, "fails": 1, "hold": "go"})

    # When w1 is paused and w2 resumed while the first attempt runs
    def running_on_w1() -> Any:
        return (app.control.inspect([w1], timeout=1).active() or {}).get(w1)

    wait_for(running_on_w1, 20, interval=0.2, what="w1 to run the first attempt")
    assert rfqueue_cli(redis_server, "resume", w2).returncode == 0
    assert rfqueue_cli(redis_server, "pause", w1, "--for", "60").returncode == 0
    wait_for(lambda: _up(app) == (f"rfqueue.{w2}",), 5, what="routers to see only w2 up")
    redis_client.set("go", 1)  # the first attempt ends and asks for its retry

    # Then the retry runs on w2, from w2's queue
    attempts = wait_for(lambda: _attempts(redis_client), 30, what="the retry to run")
    assert [(a["attempt"], a["worker"]) for a in attempts] == [(0, w1), (1, w2)], attempts
    assert attempts[1]["queue"] == f"rfqueue.{w2}"
    scenario_line("retry", 1, 1, 0, "w1 paused during the first attempt; retry ran on w2")


def _up(app: Any) -> tuple[str, ...]:
    from rfqueue.settings import Settings
    from rfqueue.table.registry import snapshot_for

    return snapshot_for(Settings.load(app.conf)).up_queues


def _attempts(client: Any) -> list[dict[str, Any]] | None:
    lines = sorted(ledger(client), key=lambda x: x["attempt"])
    return lines if len(lines) >= 2 else None
