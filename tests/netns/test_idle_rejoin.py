"""An idle worker cut off from Redis reads its queue again soon after the link returns.

Its last BRPOP was sent before the cut and its reply was lost in the network; kombu
drops such a connection only after ``brpop_timeout + health_check_interval``, checked
every ``health_check_interval``. With kombu's default (25 s) the worker would be up in
the table, routed to, and deaf to its queue for up to about 51 s. The reference app
sets 3 s (workers/app.py).
"""

from __future__ import annotations

import time

import pytest
from celery import Celery

from rfqueue.demo.fleet import Fleet, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.integration.conftest import ledger, nodename
from tests.netns.conftest import HostRedis
from tests.netns.hosts import Network

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.netns]

#: long enough for the BRPOP reply sent during the cut to be lost, and retransmitted late
CUT = 20.0
LEDGER = "rfqueue:ledger:idle"


def test_an_idle_worker_reads_its_queue_within_seconds_of_rejoining(
    network: Network, host_redis: HostRedis, host_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = host_redis.client()
    table = FailureTable(client, "rfqueue")
    w1 = nodename("w1")

    # Given w1 and w2, idle, each on its own network host (w2 marks w1 down when cut off)
    for name in ("w1", "w2"):
        host_fleet.start_worker(name, "--concurrency", "1", wrap=network.host(name).exec_prefix)
    for name in ("w1", "w2"):
        host_fleet.wait_ready(name)
    wait_for(lambda: _state(table, w1) is State.UP, 15, what="w1 up")

    # When its link is down for 12 s (it is marked down meanwhile), and comes back
    network.cut("w1")
    cut_at = time.monotonic()
    wait_for(lambda: _state(table, w1) is State.DOWN, 15, interval=0.1, what="w1 down")
    # (w2 stops: only w1 may take what is sent to w1's queue, nobody moves it elsewhere)
    host_fleet.stop_worker("w2")
    _wait_until(cut_at + CUT)
    network.restore("w1")
    wait_for(lambda: _state(table, w1) is State.UP, 15, interval=0.1, what="w1 back up")

    # And a task is sent to its queue as soon as the table shows it up
    # (Celery prefers CELERY_BROKER_URL to broker=, and the test session sets it)
    monkeypatch.setenv("CELERY_BROKER_URL", host_redis.broker_socket_url)
    producer = Celery("idle-producer", set_as_current=False)
    producer.conf.update(task_serializer="json", accept_content=["json"])
    sent = time.time()
    producer.send_task(
        "workers.tasks.record",
        kwargs={"seq": 0, "sent": sent, "ledger": LEDGER},
        queue=f"rfqueue.{w1}",
    )

    # Then w1 runs it within a few seconds, not after kombu's default 51 s
    lines = wait_for(lambda: ledger(client, LEDGER), 15, interval=0.1, what="the task to run")
    waited = lines[0]["done"] - sent
    print(
        f"[idle rejoin] w1 cut off for {CUT:.0f} s; a task sent once it was up ran "
        f"{waited:.2f} s later"
    )
    assert lines[0]["worker"] == w1
    assert waited < 3.0, waited


def _state(table: FailureTable, worker: str) -> State | None:
    entry = table.entries().get(worker)
    return entry.state if entry else None


def _wait_until(deadline: float) -> None:
    """Keep the link down until ``deadline`` (the cut's length is the scenario, not a wait)."""
    wait_for(lambda: time.monotonic() >= deadline, CUT + 5, interval=0.1, what="the cut's end")
