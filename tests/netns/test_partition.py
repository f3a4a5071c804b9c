"""A worker cut off from the network: reaped, its queue moved, nothing lost; then it rejoins.

Redis runs on one network host and each worker on a host of its own (network
namespaces on a virtual switch, see hosts.py). Cutting w1's link is a real network
partition: w1 stays alive and keeps its task, but cannot reach Redis, and Redis
cannot reach it.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from typing import Any

import pytest

from rfqueue.brokers.redis_layout import queue_depths
from rfqueue.demo.fleet import Fleet, ManagedProcess, wait_for
from rfqueue.table import Event, FailureTable
from rfqueue.table.entry import Reason, State
from tests.conftest import FAST
from tests.faults.conftest import scenario_line
from tests.faults.test_crash import mid_task
from tests.integration.conftest import ROOT, ledger, nodename
from tests.netns.conftest import HostRedis
from tests.netns.hosts import Network
from workers.producer import PRODUCER_COMMAND

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.netns]

NAMES = ("w1", "w2", "w3")
#: pool processes per worker: the most tasks w1 can hold when it is cut off
CONCURRENCY = 1
#: seconds each task sleeps: slow enough for a backlog to wait in the queues
TASK_SLEEP = 0.2
BACKLOG = 60
#: tasks per second sent while w1 is cut off and after it is back
STREAM_RATE = 5
#: the least time w1 stays cut off: longer than the broker's socket timeouts (5 s),
#: so the cut-off worker's own connections time out and it has to reconnect
CUT_AT_LEAST = 10.0
BACKLOG_LEDGER = "rfqueue:ledger:backlog"
STREAM_LEDGER = "rfqueue:ledger:stream"


def test_cut_off_worker_is_marked_down_rescued_and_rejoins(
    network: Network, host_redis: HostRedis, host_fleet: Fleet
):
    client = host_redis.client()
    table = FailureTable(client, "rfqueue")
    w1 = nodename("w1")
    q1 = f"rfqueue.{w1}"

    # Given three workers, each on its own network host, and Redis on a fourth
    for name in NAMES:
        wrap = network.host(name).exec_prefix
        host_fleet.start_worker(name, "--concurrency", str(CONCURRENCY), wrap=wrap)
    for name in NAMES:
        host_fleet.wait_ready(name)
    wait_for(
        lambda: _states(table) == dict.fromkeys(map(nodename, NAMES), State.UP),
        15,
        what="three workers up in the table",
    )
    # And a steady stream of tasks, and a backlog of 60 spread over the three queues
    stream = _producer(
        host_redis, host_fleet, STREAM_LEDGER, "--rate", str(STREAM_RATE), "--duration", "120"
    )
    wait_for(lambda: ledger(client, STREAM_LEDGER), 30, what="the stream under way")
    backlog = _producer(
        host_redis, host_fleet, BACKLOG_LEDGER, "--rate", "200", "--count", str(BACKLOG)
    )

    # When w1's link goes down while it runs a task and its queue holds a backlog
    wait_for(
        lambda: _depth(client, q1) >= 10 and mid_task(client, w1),
        30,
        interval=0.02,
        what="a backlog on w1 and a task in its hands",
    )
    version_at_cut = table.read()[0]
    network.cut("w1")
    cut_at = time.time()

    # Then the other workers mark w1 down for want of a heartbeat
    down = wait_for(
        lambda: _event(table, w1, "down", version_at_cut), 15, interval=0.1, what="w1 marked down"
    )
    assert (down.reason, _states(table)[w1]) == (Reason.HEARTBEAT.value, State.DOWN)
    marked_after = down.time - cut_at
    assert marked_after < float(FAST["RFQUEUE_HEARTBEAT_TIMEOUT"]) + 3, marked_after
    # And w1's queue is emptied while w1 is still cut off: its tasks moved to w2 and w3
    wait_for(lambda: _depth(client, q1) == 0, 10, what="w1's queue moved")
    drained_after = time.time() - cut_at
    # And new tasks run on w2 and w3 while the link stays down
    wait_for(
        lambda: len(_lines_sent(client, STREAM_LEDGER, down.time + 0.5, time.time())) >= 10,
        20,
        what="new tasks done by w2 and w3",
    )
    wait_for(lambda: time.time() - cut_at >= CUT_AT_LEAST, CUT_AT_LEAST + 1, interval=0.1)

    # When the link comes back
    network.restore("w1")
    up_at = time.time()

    # Then w1 rejoins: the table shows it up again, from its own heartbeat (events are
    # found by version, not by time: the table takes each writer's clock)
    back = wait_for(
        lambda: _event(table, w1, "register", down.version),
        30,
        interval=0.1,
        what="w1 back in the table",
    )
    rejoined_at = time.time()
    assert back.reason == Reason.HEARTBEAT.value
    # And it heartbeats again: a beat sent after the link came back
    wait_for(lambda: (table.entries()[w1].heartbeat or 0) > up_at, 10, what="w1's heartbeat")
    assert table.entries()[w1].state is State.UP
    # And it runs new tasks again
    wait_for(
        lambda: _ran_on(client, w1, sent_after=rejoined_at) >= 3, 30, what="w1 running new tasks"
    )

    # When the producers are done
    assert backlog.proc.wait(30) == 0, backlog.log()[-2000:]
    assert stream.stop() == 0, stream.log()[-2000:]
    keys = (BACKLOG_LEDGER, STREAM_LEDGER)
    submitted = {key: int(client.get(f"{key}:submitted")) for key in keys}

    # Then nothing is lost: every task of both producers ran at least once
    runs = _wait_all_ran(client, submitted, 60)
    twice = sum(n > 1 for counts in runs.values() for n in counts.values())
    moved, restored = _rescue_counts(host_fleet, q1)
    scenario_line(
        "netns partition",
        sum(submitted.values()),
        sum(len(c) for c in runs.values()),
        twice,
        f"w1's link down for {up_at - cut_at:.1f} s; marked down after {marked_after:.1f} s "
        f"(queue moved {drained_after:.1f} s after the cut: {moved} waiting, {restored} unacked); "
        f"rejoined {rejoined_at - up_at:.1f} s after link up",
    )
    # And at most what w1 held when it was cut off ran twice (at least once is the promise)
    assert twice <= CONCURRENCY, runs
    # And what waited in w1's queue at the cut ran on w2 and w3
    assert _backlog_moved_off(client, q1, w1) >= 10
    # And what was sent while w1 was cut off ran on w2 and w3 only; after the down the
    # router did not even send it there
    during = _lines_sent(client, STREAM_LEDGER, cut_at, up_at)
    assert during and all(x["worker"] != w1 for x in during), during
    routed = client.hgetall(f"{STREAM_LEDGER}:routed")
    after_down = _lines_sent(client, STREAM_LEDGER, down.time + 0.5, up_at)
    assert all(routed[str(x["seq"])] != q1 for x in after_down)
    assert all(proc.alive() for proc in host_fleet.workers.values())


def _producer(server: HostRedis, fleet: Fleet, key: str, *args: str) -> ManagedProcess:
    """The README's producer, in this (root) namespace, talking to Redis by its unix socket."""
    env = {
        **os.environ, **FAST,
        "CELERY_BROKER_URL": server.broker_socket_url, "RFQUEUE_REDIS_URL": server.socket_url,
        # a push policy: the cut must strand a backlog in w1's own queue (under the default
        # pull it would wait in the pool's queue, which the others consume anyway)
        "RFQUEUE_POLICY": "round_robin",
    }  # fmt: skip
    argv = [sys.executable, *PRODUCER_COMMAND[1:], "--ledger", key, "--sleep", str(TASK_SLEEP)]
    log = fleet.workdir / f"producer-{key.rsplit(':', 1)[-1]}.log"
    return ManagedProcess([*argv, *args], log, env, ROOT)


def _states(table: FailureTable) -> dict[str, State]:
    return {name: entry.state for name, entry in table.entries().items()}


def _event(table: FailureTable, worker: str, action: str, after_version: int) -> Event | None:
    """The first ``action`` event of ``worker`` in a table change after ``after_version``."""
    found = [e for e in table.events(200) if e.worker == worker and e.action == action]
    return next((e for e in reversed(found) if e.version > after_version), None)


def _depth(client: Any, queue: str) -> int:
    return queue_depths(client, [queue])[queue]


def _lines_sent(client: Any, key: str, start: float, end: float) -> list[dict[str, Any]]:
    """Ledger lines of the tasks sent between ``start`` and ``end``."""
    return [x for x in ledger(client, key) if start <= x["sent"] <= end]


def _ran_on(client: Any, worker: str, sent_after: float) -> int:
    return sum(1 for x in ledger(client, STREAM_LEDGER) if x["worker"] == worker
               and x["sent"] > sent_after)  # fmt: skip


def _wait_all_ran(
    client: Any, submitted: dict[str, int], timeout: float
) -> dict[str, Counter[int]]:
    """Runs per seq for each ledger, once every submitted seq ran; fails naming the missing."""

    def missing() -> dict[str, list[int]]:
        ran = {key: {x["seq"] for x in ledger(client, key)} for key in submitted}
        return {key: sorted(set(range(n)) - ran[key]) for key, n in submitted.items()}

    try:
        wait_for(
            lambda: not any(missing().values()), timeout, interval=0.2, what="every task to run"
        )
    except TimeoutError:
        raise AssertionError(f"tasks never ran: {missing()}") from None
    return {key: Counter(x["seq"] for x in ledger(client, key)) for key in submitted}


def _backlog_moved_off(client: Any, queue: str, worker: str) -> int:
    """Backlog tasks first routed to ``queue`` that ran on another worker."""
    routed = client.hgetall(f"{BACKLOG_LEDGER}:routed")
    return sum(1 for x in ledger(client, BACKLOG_LEDGER)
               if routed.get(str(x["seq"])) == queue and x["worker"] != worker)  # fmt: skip


def _rescue_counts(fleet: Fleet, queue: str) -> tuple[int, int]:
    """Waiting tasks moved off ``queue``, and unacked ones restored, as the workers logged."""
    logs = "".join(proc.log() for proc in fleet.workers.values())
    moved = re.findall(rf"rescued (\d+) waiting tasks from {re.escape(queue)} to", logs)
    restored = re.findall(r"restored (\d+) unacked tasks of a dead worker", logs)
    return sum(map(int, moved)), sum(map(int, restored))
