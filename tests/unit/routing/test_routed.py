"""Routed counts: exact under threads, flushed to Redis in batches, never a call per task."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest
import redis
from celery import Celery

from rfqueue.keys import Keys
from rfqueue.routing.routed import RoutedCounts, flush_quietly
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason

KEY = Keys("t").routed


class BrokenClient:
    def pipeline(self, transaction: bool = True) -> Any:
        raise redis.ConnectionError("redis is away")


def test_threads_lose_no_count() -> None:
    # Given four threads counting 20,000 tasks each over two queues
    routed = RoutedCounts()

    def work() -> None:
        for i in range(20_000):
            routed.add("qa" if i % 2 else "qb")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every task is counted exactly once
    assert routed.totals() == {"qa": 40_000, "qb": 40_000}
    assert routed.count("qa") == 40_000


def test_flush_adds_only_what_is_new(client: fakeredis.FakeRedis) -> None:
    routed = RoutedCounts()
    for _ in range(3):
        routed.add("qa")
    routed.add("qb")
    assert routed.flush(client, KEY) == {"qa": 3, "qb": 1}
    assert client.hgetall(KEY) == {"qa": "3", "qb": "1"}
    # A flush with nothing new sends nothing; the next adds only the difference
    assert routed.flush(client, KEY) == {}
    routed.add("qb")
    assert routed.flush(client, KEY) == {"qb": 1}
    assert client.hgetall(KEY) == {"qa": "3", "qb": "2"}


def test_flush_adds_to_what_other_routers_wrote(client: fakeredis.FakeRedis) -> None:
    client.hset(KEY, "qa", 10)
    routed = RoutedCounts()
    routed.add("qa")
    routed.flush(client, KEY)
    assert client.hget(KEY, "qa") == "11"


def test_a_failed_flush_keeps_the_counts(
    client: fakeredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two routed tasks and a Redis that is away
    routed = RoutedCounts()
    routed.add("qa")
    routed.add("qa")
    warnings: list[str] = []
    flush_quietly(routed, BrokenClient(), KEY, lambda msg, *a: warnings.append(msg % a))
    # Then a warning says so, and the next flush carries them
    assert len(warnings) == 1 and "will retry" in warnings[0]
    assert routed.flush(client, KEY) == {"qa": 2}


def test_ten_thousand_threads_leave_one_count_per_queue(client: fakeredis.FakeRedis) -> None:
    # Given 10,000 threads (under gevent, greenlets: "threads" that never end), each
    # routing one task, and no flush in between
    routed = RoutedCounts()
    routed.add("qa")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10_000):
            t = threading.Thread(target=routed.add, args=("qa",))
            t.start()
            t.join()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Then nothing per thread stayed behind (per-thread dicts took 3 to 23 MB; the
    # interpreter's own bookkeeping of 10,000 threads leaves about 0.1 MB), and
    # nothing was lost
    assert grown < 1_000_000, f"{grown} bytes kept for 10,000 threads"
    assert routed.count("qa") == 10_001
    assert routed.flush(client, KEY) == {"qa": 10_001}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_starts_from_zero() -> None:
    routed = RoutedCounts()
    routed.add("qa")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            routed.add("qb")
            os.write(write, b"1" if routed.totals() == {"qb": 1} else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    # The parent's counts are the parent's to flush: the child must not send them again
    assert answer == b"1"
    assert routed.totals() == {"qa": 1}


class TestRouterFlush:
    @pytest.fixture
    def router(self, use_fake_redis: None, table: FailureTable, stop: Callable[..., None]) -> Any:
        for name in ("a@h", "b@h"):
            table.register(name, f"rfqueue.{name}")
        # Counts follow what Celery publishes: an app on kombu's in-memory transport
        app = Celery("flush", broker="memory://", set_as_current=False)
        router = Router(
            app,
            Settings(
                redis_url="redis://fake:6379/0",
                namespace="t",
                refresh_interval=30,
                policy="round_robin",  # counts per worker queue
            ),
        )
        app.conf.task_routes = [router]
        yield router
        stop(router.snapshot)

    def test_routing_writes_nothing_until_the_refresh_thread_flushes(
        self,
        router: Router,
        table: FailureTable,
        client: fakeredis.FakeRedis,
        poll: Callable[..., bool],
    ) -> None:
        # Given a started router that has just flushed (the next flush is due in 30 s)
        router._start(None)
        router._flushed_at = time.monotonic()
        # When 1,000 tasks are routed
        for _ in range(1000):
            router.app.send_task("tasks.add")
        # Then not one of them wrote to Redis
        assert client.hgetall(KEY) == {}
        assert router.routed.totals() == {"rfqueue.a@h": 500, "rfqueue.b@h": 500}
        # When the next flush is due and the thread wakes, Then one flush carries them all
        router._flushed_at -= 30
        table.pause("a@h", 600, Reason.MANUAL)
        assert poll(lambda: client.hgetall(KEY) == {"rfqueue.a@h": "500", "rfqueue.b@h": "500"})

    def test_flush_at_most_every_refresh_interval(
        self, router: Router, client: fakeredis.FakeRedis
    ) -> None:
        router.app.send_task("tasks.add")
        router._flush_routed()
        assert client.hgetall(KEY) == {"rfqueue.a@h": "1"}
        router.app.send_task("tasks.add")
        router._flush_routed()  # too soon: waits for the next interval
        assert client.hgetall(KEY) == {"rfqueue.a@h": "1"}
        router._flushed_at -= 30
        router._flush_routed()
        assert client.hgetall(KEY) == {"rfqueue.a@h": "1", "rfqueue.b@h": "1"}

    def test_explicit_queue_is_neither_routed_nor_counted(self, router: Router) -> None:
        assert router("tasks.add", (), {}, {"queue": "mine"}) is None
        assert router.routed.totals() == {}
