"""The random-failure job on a real fleet: beat pauses workers, nothing is lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import State
from tests.integration.conftest import active_queues, nodename, wait_for_seqs
from tests.integration.test_routing import wait_until_routable

pytestmark = pytest.mark.integration

CHAOS = {
    "RFQUEUE_CHAOS_ENABLED": "true",
    "RFQUEUE_CHAOS_INTERVAL": "0.5",
    "RFQUEUE_CHAOS_PROBABILITY": "1",
    "RFQUEUE_CHAOS_MIN_DURATION": "2",
    "RFQUEUE_CHAOS_MAX_DURATION": "4",
    "RFQUEUE_MAX_PAUSED": "1",
    "RFQUEUE_MIN_UP": "1",
}


@dataclass
class Observer:
    """Samples the table every 100 ms and asks Celery who consumes what during pauses."""

    table: FailureTable
    redis_server: RedisServer
    max_not_up: int = 0
    samples: int = 0
    #: (worker, still consuming its queue or a pool?) for checks made well inside a pause
    checks: list[tuple[str, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample_budget(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            entries = self.table.entries()
            not_up = sum(e.effective_state(now) is not State.UP for e in entries.values())
            self.max_not_up = max(self.max_not_up, not_up)
            self.samples += 1
            self.stop.wait(0.1)

    def check_consumers(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            for e in self.table.entries().values():
                # well inside a pause that outlasts one `celery inspect` round trip
                if e.state is State.PAUSED and e.until and e.since + 0.3 < now < e.until - 1.5:
                    queues = active_queues(self.redis_server, e.worker)
                    still = self.table.entries()[e.worker]
                    if still.version == e.version and time.time() < e.until:
                        consumed = {e.queue, *e.pools} & set(queues)
                        self.checks.append((e.worker, bool(consumed)))
                    break
            self.stop.wait(0.2)


def pause_windows(table: FailureTable) -> dict[str, list[tuple[float, float]]]:
    """Each worker's chaos pauses, from the event log: (start, end)."""
    windows: dict[str, list[tuple[float, float]]] = {}
    events = sorted(table.events(1000), key=lambda ev: ev.version)
    for i, ev in enumerate(events):
        if ev.action != "pause" or ev.until is None:
            continue
        end = ev.until
        for later in events[i + 1 :]:
            if later.worker == ev.worker and later.action in ("resume", "down"):
                end = min(end, later.time)
                break
        windows.setdefault(ev.worker, []).append((ev.time, end))
    return windows


def test_chaos_for_20s_over_three_workers_and_2000_tasks(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any
):
    # Given three workers and beat running the chaos job twice a second
    for name in ("w1", "w2", "w3"):
        fleet.start_worker(name, "--concurrency", "1", env=CHAOS)
    for name in ("w1", "w2", "w3"):
        fleet.wait_ready(name)
    names = [nodename(n) for n in ("w1", "w2", "w3")]
    wait_until_routable(app, *names)
    fleet.start_beat(env=CHAOS)
    table = FailureTable(redis_server.client(), "rfqueue")
    observer = Observer(table, redis_server)
    threads = [
        threading.Thread(target=fn, daemon=True)
        for fn in (observer.sample_budget, observer.check_consumers)
    ]
    for t in threads:
        t.start()

    # When 2,000 tasks are sent at 100 per second
    from workers.tasks import record

    start = time.monotonic()
    for seq in range(2000):
        record.delay(seq, time.time())
        time.sleep(max(0.0, start + (seq + 1) / 100 - time.monotonic()))

    # Then every task completes
    lines = wait_for_seqs(redis_client, set(range(2000)), timeout=90)
    # (chaos goes on: on a loaded box an inspect round trip can outlast most pauses)
    wait_for(lambda: len(observer.checks) >= 2, 90, interval=0.5, what="two consumer checks")
    observer.stop.set()
    for t in threads:
        t.join(10)
    counts = Counter(line["seq"] for line in lines)
    duplicates = sum(1 for n in counts.values() if n > 1)
    windows = pause_windows(table)
    n_pauses = sum(len(w) for w in windows.values())
    print(
        f"chaos: submitted 2000, completed {len(counts)}, lost {2000 - len(counts)}, "
        f"duplicates {duplicates}, pauses {n_pauses}, budget samples {observer.samples}, "
        f"max not up {observer.max_not_up}, consumer checks {observer.checks}"
    )
    assert len(counts) == 2000 and duplicates == 0

    # And chaos really happened, and the budget (1 paused or down) was never exceeded
    assert n_pauses >= 4 and len(windows) >= 2, windows
    assert observer.samples >= 150
    assert observer.max_not_up == 1

    # And paused workers really stopped consuming, by Celery's own `inspect active_queues`
    assert len(observer.checks) >= 2
    assert not any(consuming for _, consuming in observer.checks), observer.checks

    # And no task ran on a worker well inside one of its pauses (0.5 s grace at the start)
    inside = [
        line
        for line in lines
        for begin, end in windows.get(line["worker"], [])
        if begin + 0.5 < line["done"] < end
    ]
    assert inside == [], inside[:5]
