"""Tail latency under chaos: p99 task latency with one of four workers always paused,
a different one every 5 s, against the same run without pauses.

A producer thread publishes ``bench.latency`` at a steady rate through rfqueue's
router; each task sleeps ``WORK`` seconds and appends (finish time - publish time) to
a list. In a chaos window a rotation pauses the next worker (``rfqueue pause``'s two
steps: table change, then ``rfqueue_sync``) and resumes the previous one. Tasks
already waiting in a paused worker's queue are moved on by rfqueue's stranded-task
rescue, which runs in every worker. Windows alternate; the row is the median ratio.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery

from rfqueue.bench.common import Bench, Row, median, percentile, queue_name
from rfqueue.bench.routing import rfqueue_app
from rfqueue.control import RemoteControl
from rfqueue.demo.fleet import wait_for
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason

#: seconds each task works
WORK = 0.02
#: tasks per second; with 4 workers of one process each, about 20% busy
RATE = 40.0
#: seconds between two rotations
ROTATE = 5.0


def latency(sent: float, key: str, work: float = 0.0) -> None:
    """``bench.latency`` of rfqueue/bench/app.py; run by the workers, not here."""


class Rotation(threading.Thread):
    """Keeps exactly one worker paused, a different one every ROTATE seconds."""

    def __init__(self, bench: Bench, workers: Sequence[str]) -> None:
        super().__init__(name="bench-rotation", daemon=True)
        self.table = FailureTable(bench.client())
        self.control = RemoteControl(Celery("bench-chaos", broker=bench.url, set_as_current=False))
        self.workers = list(workers)
        self.stopping = threading.Event()

    def run(self) -> None:
        turn, paused = 0, None
        while True:
            worker = self.workers[turn % len(self.workers)]
            self._pause(worker)
            if paused is not None:
                self._resume(paused)
            paused, turn = worker, turn + 1
            if self.stopping.wait(ROTATE):
                self._resume(paused)
                return

    def _pause(self, worker: str) -> None:
        change = self.table.pause(worker, ROTATE * 3, Reason.CHAOS, note="bench")
        if change.entry is not None:
            self.control.sync(change.entry)

    def _resume(self, worker: str) -> None:
        change = self.table.resume(worker, Reason.CHAOS)
        if change.entry is not None:
            self.control.sync(change.entry)


def window(bench: Bench, task: Any, seconds: float, chaos: Sequence[str] | None) -> list[float]:
    """Publish at RATE for ``seconds`` (rotating pauses if ``chaos``); every task's latency."""
    client = bench.client()
    key = bench.keys.bench("latency")
    client.delete(key)
    rotation = Rotation(bench, chaos) if chaos else None
    if rotation is not None:
        rotation.start()
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
        task.apply_async((time.time(), key, WORK))
        sent += 1
    if rotation is not None:
        rotation.stopping.set()
        rotation.join()
    wait_for(lambda: client.llen(key) >= sent, 120, 0.05, f"{sent} latencies")
    values = [float(v) for v in client.lrange(key, 0, -1)]
    client.delete(key)
    return values


def run(bench: Bench, names: Sequence[str]) -> list[Row]:
    """p99 with chaos over p99 without, median over alternating window pairs."""
    runs, seconds = bench.pick((1, 6.0), (3, 30.0))
    app = rfqueue_app(bench.url)
    task = app.task(name="bench.latency", shared=False)(latency)
    router = app.conf.task_routes[0]
    wait_for(lambda: len(router.snapshot.up_queues) == len(names), 30, what="workers up")
    nodenames = [queue_name(n).removeprefix("rfqueue.") for n in names]
    calm: list[float] = []
    rough: list[float] = []
    for i in range(runs):
        for chaos in (False, True) if i % 2 == 0 else (True, False):
            p99 = percentile(window(bench, task, seconds, nodenames if chaos else None), 99)
            (rough if chaos else calm).append(p99)
            bench.log(f"  tail latency, {'chaos' if chaos else 'calm'}: p99 {p99 * 1e3:.0f} ms")
    ratios = [r / c for c, r in zip(calm, rough, strict=True)]
    return [
        Row(
            "tail latency: p99 with 1 of 4 paused, rotating",
            f"{median(rough) * 1e3:.0f} ms",
            f"{median(calm) * 1e3:.0f} ms no chaos",
            median(ratios),
            "<= 1.5",
            f"{runs} x {seconds:g} s per side at {RATE:g} tasks/s of {WORK * 1e3:g} ms, "
            f"rotating every {ROTATE:g} s",
        )
    ]
