"""Propagation: from a pause until every router has stopped choosing the queue, and until
the paused worker's consumer is cancelled.

Four producer processes (``python -m rfqueue.bench.propagation URL``) route all the
time (bursts of 20 ``route()`` calls, 1 ms apart) and print the wall-clock time at
which their router's snapshot dropped a queue from, or took it back into, the up set.
The pause is what ``rfqueue pause`` does: the atomic table change plus the
``rfqueue_sync`` remote-control broadcast. The worker side is the time stamp of Celery's own
"Canceling queue" log line. Each pause waits for all five answers, then the worker
is resumed and everyone must see it back before the next pause.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from celery import Celery

from rfqueue.bench.common import Bench, BenchFleet, Row, percentile, queue_name
from rfqueue.bench.routing import rfqueue_app
from rfqueue.control import RemoteControl
from rfqueue.demo.fleet import ManagedProcess, wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason

PRODUCERS = 4


class Producers:
    """The producer processes and what they reported, by (event, queue)."""

    def __init__(self, bench: Bench) -> None:
        self.events: list[tuple[str, str, float]] = []
        self._lock = threading.Lock()
        argv = [sys.executable, "-u", "-m", "rfqueue.bench.propagation", bench.url]
        self.procs = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=bench.env())
            for _ in range(PRODUCERS)
        ]
        self._readers = [threading.Thread(target=self._read, args=(p,)) for p in self.procs]
        for reader in self._readers:
            reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            with self._lock:
                self.events.append((event["event"], event["queue"], event["at"]))

    def times(self, event: str, queue: str, after: float) -> list[float]:
        with self._lock:
            return [at for e, q, at in self.events if e == event and q == queue and at >= after]

    def all_saw(self, event: str, queue: str, after: float) -> list[float]:
        """The times, once every producer reported ``event`` for ``queue``; else []."""
        times = self.times(event, queue, after)
        return times if len(times) >= PRODUCERS else []

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)
        for reader in self._readers:
            reader.join(10)


def cancel_times(proc: ManagedProcess, queue: str) -> list[float]:
    """Epoch times of the worker's "Canceling queue QUEUE" log lines."""
    stamps = []
    for line in proc.log().splitlines():
        if f"Canceling queue {queue}" in line and line.startswith("["):
            stamp = line[1 : line.index(":", 20)]  # "[2026-11-26 05:12:49,123: INFO/..."
            stamps.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return stamps


def one_pause(
    table: FailureTable, control: RemoteControl, producers: Producers, proc: ManagedProcess,
    worker: str, queue: str,
) -> tuple[float, float]:  # fmt: skip
    """(routers, consumer) seconds after one pause; resumes and waits for the way back."""
    already = len(cancel_times(proc, queue))
    start = time.time()
    change = table.pause(worker, 60, Reason.MANUAL, note="bench")
    if change.entry is not None:
        control.sync(change.entry)
    gone = wait_for(partial(producers.all_saw, "gone", queue, start), 10, 0.005, "routers")
    cancels = wait_for(lambda: cancel_times(proc, queue)[already:], 10, 0.005, "the cancel")
    resumed = time.time()
    change = table.resume(worker, Reason.MANUAL)
    if change.entry is not None:
        control.sync(change.entry)
    wait_for(partial(producers.all_saw, "back", queue, resumed), 10, 0.005, "routers back")
    started = f"Started consuming from {queue}"
    wait_for(lambda: started in proc.log().rsplit("Canceling", 1)[-1], 10, 0.005, "re-add")
    return max(gone) - start, cancels[0] - start


def run(bench: Bench, workers: BenchFleet, names: Sequence[str]) -> list[Row]:
    """p50 and p99 over the pauses, against the targets 50 ms and 1 s."""
    pauses = bench.pick(10, 50)
    table = FailureTable(bench.client())
    control = RemoteControl(Celery("bench-control", broker=bench.url, set_as_current=False))
    producers = Producers(bench)
    routers, consumers = [], []
    try:
        for queue in (queue_name(n) for n in names):  # every producer has seen every worker
            seen = partial(producers.all_saw, "back", queue, 0)
            wait_for(seen, 60, 0.05, "producers to see every worker")
        for i in range(pauses):
            name = names[i % len(names)]
            queue = queue_name(name)
            worker = queue.removeprefix("rfqueue.")  # the nodename, name@host
            r, c = one_pause(table, control, producers, workers.procs[name], worker, queue)
            routers.append(r)
            consumers.append(c)
    finally:
        producers.stop()
    note = f"{pauses} pauses; p50 {percentile(routers, 50) * 1e3:.1f} ms"
    return [
        Row(
            "propagation: pause -> 4 producers' routers (p99)",
            f"{percentile(routers, 99) * 1e3:.1f} ms",
            "50 ms",
            percentile(routers, 99) / 0.05,
            "<= 1",
            note,
        ),
        Row(
            "propagation: pause -> consumer cancelled (p99)",
            f"{percentile(consumers, 99) * 1e3:.1f} ms",
            "1000 ms",
            percentile(consumers, 99) / 1.0,
            "<= 1",
            f"{pauses} pauses; p50 {percentile(consumers, 50) * 1e3:.1f} ms",
        ),
    ]


def main() -> None:
    """A producer: route continuously, print when the up set loses or regains a queue."""
    url = sys.argv[1]
    app: Any = rfqueue_app(url)
    router = app.amqp.router
    router.route({}, "bench.noop", (), {})
    snapshot = app.conf.task_routes[0].snapshot
    seen: set[str] = set()
    lock = threading.Lock()

    def on_change(snap: Any) -> None:
        now, up = time.time(), set(snap.up_queues)
        with lock:
            for queue in seen - up:
                print(json.dumps({"event": "gone", "queue": queue, "at": now}), flush=True)
            for queue in up - seen:
                print(json.dumps({"event": "back", "queue": queue, "at": now}), flush=True)
            seen.clear()
            seen.update(up)

    snapshot.add_listener(on_change)
    on_change(snapshot)
    while True:
        for _ in range(20):
            router.route({}, "bench.noop", (), {})
        time.sleep(0.001)


if __name__ == "__main__":
    main()
