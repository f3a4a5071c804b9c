"""Real fleets of pools and task sets (issue 12): tasks stay in their pool, none is dropped.

The reference app routes ``workers.media.transcode`` to the ``video`` pool; workers
started with ``WORKERS_SKIP=workers.media`` lack the media tasks, as a worker of another
build would. Every process is a real ``celery`` process on a private redis-server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from tests.integration.conftest import (
    ROOT,
    active_queues,
    nodename,
    rfqueue_cli,
    wait_for_seqs,
)
from tests.integration.test_routing import wait_until_routable

pytestmark = pytest.mark.integration

WITHOUT_MEDIA = {"WORKERS_SKIP": "workers.media"}


def snapshot_of(app: Any) -> Any:
    from rfqueue.settings import Settings
    from rfqueue.table.registry import snapshot_for

    snapshot = snapshot_for(Settings.load(app.conf))
    snapshot.ensure_started()
    return snapshot


def wait_until_served(app: Any, pool: str, task: str, *workers: str) -> None:
    """Wait until this process's router sees exactly ``workers`` up in ``pool`` with ``task``."""
    snapshot = snapshot_of(app)
    want = tuple(sorted(f"rfqueue.{w}" for w in workers))

    def served() -> bool:
        index = snapshot.pools
        return index.having(index.up_in(pool, "celery"), task) == want

    wait_for(served, 15, what=f"{workers} serving {task} in {pool}")


def stats(redis_server: RedisServer, worker: str) -> dict[str, Any]:
    """rfqueue's part of ``celery inspect stats`` (what Flower shows on the worker page)."""
    exe = Path(sys.executable).with_name("celery")
    out = subprocess.run(
        [str(exe), "-A", "workers.app", "inspect", "stats", "-d", worker, "-j", "-t", "3"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": redis_server.url},
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return dict(json.loads(out.stdout)[worker]["rfqueue"])


def test_a_task_only_one_worker_has_runs_only_there(
    fleet: Fleet, redis_client: Any, app: Any
) -> None:
    # Given two workers of the default pool, only t1 with the media tasks
    fleet.start_worker("t1", "--concurrency", "1")
    fleet.start_worker("t0", "--concurrency", "1", env=WITHOUT_MEDIA)
    for name in ("t1", "t0"):
        fleet.wait_ready(name)
    t1, t0 = nodename("t1"), nodename("t0")
    wait_until_routable(app, t1, t0)
    wait_until_served(app, "celery", "workers.media.thumbnail", t1)

    # When 60 thumbnail tasks are sent the ordinary way
    from workers.media import thumbnail

    for seq in range(60):
        thumbnail.delay(seq, time.time())

    # Then all 60 complete, each once, on t1 (t0 would have dropped them as unregistered)
    lines = wait_for_seqs(redis_client, set(range(60)), timeout=60)
    assert len(lines) == 60
    assert Counter(line["worker"] for line in lines) == {t1: 60}
    assert "unregistered task" not in fleet.workers["t0"].log()


def test_a_paused_worker_of_a_pool_runs_nothing_of_it(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
) -> None:
    # Given p1 consuming celery, v1 and v2 consuming video; the app routes transcode to video
    fleet.start_worker("p1", "--concurrency", "1", "-Q", "celery")
    for name in ("v1", "v2"):
        fleet.start_worker(name, "--concurrency", "1", "-Q", "video")
    for name in ("p1", "v1", "v2"):
        fleet.wait_ready(name)
    p1, v1, v2 = (nodename(n) for n in ("p1", "v1", "v2"))
    wait_until_routable(app, p1, v1, v2)
    assert stats(redis_server, v1)["pools"] == ["video"]

    # And v1 paused by an operator
    out = rfqueue_cli(redis_server, "pause", v1, "--for", "60")
    assert out.returncode == 0, out.stderr
    wait_until_served(app, "video", "workers.media.transcode", v2)

    def stopped() -> bool:
        queues = active_queues(redis_server, v1)
        return "video" not in queues and f"rfqueue.{v1}" not in queues

    wait_for(stopped, 10, interval=0.2, what="v1 to stop consuming video and its own queue")

    # When 60 transcode tasks are sent
    from workers.media import transcode

    for seq in range(60):
        transcode.delay(seq, time.time())

    # Then all 60 complete in the video pool: none on the paused v1, none on p1
    lines = wait_for_seqs(redis_client, set(range(60)), timeout=60)
    assert Counter(line["worker"] for line in lines) == {v2: 60}
    # And Celery itself says v1 consumes neither video nor its own queue, only control
    queues = active_queues(redis_server, v1)
    assert "video" not in queues and f"rfqueue.{v1}" not in queues
    assert "rfqueue-control" in queues

    # When v1 is resumed, Then it consumes both again
    assert rfqueue_cli(redis_server, "resume", v1).returncode == 0

    def back() -> bool:
        queues = active_queues(redis_server, v1)
        return "video" in queues and f"rfqueue.{v1}" in queues

    wait_for(back, 10, interval=0.2, what="v1 to consume video and its own queue again")
    assert stats(redis_server, v1)["pools"] == ["video"]


#: chaos twice a second, two pauses a tick, room for three out fleet-wide: only the
#: per-pool budget keeps one worker of each pool up
POOL_CHAOS = {
    "RFQUEUE_CHAOS_ENABLED": "true",
    "RFQUEUE_CHAOS_INTERVAL": "0.5",
    "RFQUEUE_CHAOS_PROBABILITY": "1",
    "RFQUEUE_CHAOS_K": "2",
    "RFQUEUE_CHAOS_MIN_DURATION": "1",
    "RFQUEUE_CHAOS_MAX_DURATION": "3",
    "RFQUEUE_MAX_PAUSED": "3",
    "RFQUEUE_MIN_UP": "1",
    "RFQUEUE_POOL_MAX_PAUSED": "video=2",
}
POOL_OF = {"c1": "celery", "c2": "celery", "v1": "video", "v2": "video", "v3": "video"}


class PoolSampler:
    """Counts the workers out (paused or down) in each pool, every 100 ms."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.samples: list[dict[str, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from rfqueue.table.entry import State

        while not self.stop.is_set():
            now, out = time.time(), {"celery": 0, "video": 0}
            for e in self.table.entries().values():
                if e.effective_state(now) is not State.UP:
                    for pool in e.pools:
                        out[pool] += 1
            self.samples.append(out)
            self.stop.wait(0.1)


def test_chaos_over_two_pools_keeps_every_pool_within_its_budget(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
) -> None:
    from rfqueue.table import FailureTable

    # Given two workers of the celery pool and three of the video pool, and chaos
    for name, pool in POOL_OF.items():
        fleet.start_worker(name, "--concurrency", "1", "-Q", pool, env=POOL_CHAOS)
    for name in POOL_OF:
        fleet.wait_ready(name)
    workers = {nodename(name): pool for name, pool in POOL_OF.items()}
    wait_until_routable(app, *workers)
    table = FailureTable(redis_server.client(), "rfqueue")
    sampler = PoolSampler(table)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    fleet.start_beat(env=POOL_CHAOS)

    # When 1,000 tasks of each pool are sent over 20 s
    from workers.media import transcode
    from workers.tasks import record

    start = time.monotonic()
    for n in range(1000):
        record.delay(n, time.time())
        transcode.delay(1000 + n, time.time())
        time.sleep(max(0.0, start + (n + 1) / 50 - time.monotonic()))

    # Then every task completes, once, inside its own pool
    lines = wait_for_seqs(redis_client, set(range(2000)), timeout=120)
    sampler.stop.set()
    thread.join(5)
    counts = Counter(line["seq"] for line in lines)
    outside = [
        line
        for line in lines
        if workers[line["worker"]] != ("celery" if line["seq"] < 1000 else "video")
    ]
    events = table.events(1000)
    pauses = Counter(workers[e.worker] for e in events if e.action == "pause")
    worst = {pool: max(s[pool] for s in sampler.samples) for pool in ("celery", "video")}
    print(
        f"pools chaos: submitted 2000, completed {len(counts)}, lost {2000 - len(counts)}, "
        f"duplicates {sum(n > 1 for n in counts.values())}, outside their pool {len(outside)}, "
        f"pauses {dict(pauses)}, samples {len(sampler.samples)}, most out at once {worst}"
    )
    assert len(counts) == 2000 and max(counts.values()) == 1
    assert outside == []
    # And chaos paused workers of both pools, yet never the last up worker of either
    assert pauses["celery"] >= 2 and pauses["video"] >= 2, pauses
    assert len(sampler.samples) >= 150
    assert worst["celery"] <= 1 and worst["video"] <= 2, worst
    assert max(s["celery"] + s["video"] for s in sampler.samples) <= 3
    # And the workers' pools never changed under the pauses (no serve event)
    assert not [e for e in events if e.action == "serve"]
