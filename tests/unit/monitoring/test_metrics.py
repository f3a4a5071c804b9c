"""Prometheus metrics computed on each scrape from the table, the queues and the event log."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rfqueue.brokers.redis_layout import queue_lists
from rfqueue.demo.fleet import free_port
from rfqueue.keys import Keys
from rfqueue.monitoring.metrics import TableCollector
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot
from tests.unit.conftest import NAMESPACE

PASSWORD = "s3cret-pw"


@pytest.fixture
def settings() -> Settings:
    url = f"redis://:{PASSWORD}@10.0.0.9:6379/0"
    return Settings.load({}, environ={}, redis_url=url, namespace=NAMESPACE)


def scrape(collector: TableCollector) -> tuple[str, dict[tuple[str, tuple[Any, ...]], float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def _fleet(table: FailureTable, client: Any) -> None:
    for name in ("w1@h", "w2@h", "w3@h"):
        table.register(name, f"rfqueue.{name}")
    table.pause("w2@h", 60, Reason.CHAOS)
    table.mark_down("w3@h", Reason.SHUTDOWN)
    lists = queue_lists("rfqueue.w2@h")
    client.lpush(lists[0], "a", "b")
    client.lpush(lists[2], "c")  # a priority list: part of the true depth
    client.hset(Keys(NAMESPACE).routed, mapping={"rfqueue.w1@h": 40, "rfqueue.w2@h": 7})


def test_a_scrape_reports_depths_states_routed_counts_and_events(table, client, settings):
    # Given three workers: w1 up, w2 paused with 3 tasks waiting, w3 down
    _fleet(table, client)
    snapshot = Snapshot(table)
    snapshot.refresh()

    # When the endpoint is scraped
    _, samples = scrape(TableCollector(settings, table, snapshot))

    # Then the paused queue's true depth is there, and each worker's state
    assert samples[("rfqueue_queue_depth", (("queue", "rfqueue.w2@h"), ("worker", "w2@h")))] == 3
    assert samples[("rfqueue_queue_depth", (("queue", "rfqueue.w1@h"), ("worker", "w1@h")))] == 0
    for state, n in (("up", 1), ("paused", 1), ("down", 1)):
        assert samples[("rfqueue_workers", (("state", state),))] == n
    assert samples[("rfqueue_worker_state", (("state", "paused"), ("worker", "w2@h")))] == 1
    assert samples[("rfqueue_worker_state", (("state", "up"), ("worker", "w2@h")))] == 0
    # And the routed counts, the pause and the down by reason, the snapshot's age
    assert samples[("rfqueue_tasks_routed_total", (("queue", "rfqueue.w1@h"),))] == 40
    assert samples[("rfqueue_pauses_total", (("reason", "chaos"),))] == 1
    assert samples[("rfqueue_downs_total", (("reason", "shutdown"),))] == 1
    assert 0 <= samples[("rfqueue_snapshot_age_seconds", ())] < 60
    assert samples[("rfqueue_redis_up", ())] == 1
    assert samples[("rfqueue_table_version", ())] == table.version()


def test_event_counters_count_each_event_once_and_only_grow(table, client, settings):
    # Given a scrape after one chaos pause
    _fleet(table, client)
    collector = TableCollector(settings, table)
    scrape(collector)

    # When the pause is lifted by hand and two more scrapes come
    table.resume("w2@h", Reason.MANUAL)
    scrape(collector)
    _, samples = scrape(collector)

    # Then each event was counted once
    assert samples[("rfqueue_pauses_total", (("reason", "chaos"),))] == 1
    assert samples[("rfqueue_resumes_total", (("reason", "manual"),))] == 1


def test_the_redis_password_never_appears(table, client, settings):
    _fleet(table, client)
    text, samples = scrape(TableCollector(settings, table))
    assert PASSWORD not in text
    info = [k for k in samples if k[0] == "rfqueue_exporter_info"]
    assert dict(info[0][1])["redis"] == "redis://:**@10.0.0.9:6379/0"


def test_an_unreachable_redis_gives_up_0_and_no_error(settings):
    # Given a table whose Redis is away: nothing listens on that port
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, decode_responses=True)
    table = FailureTable(dead, NAMESPACE)

    # When scraped, then the endpoint still answers: up is 0, nothing else is made up
    text, samples = scrape(TableCollector(settings, table))
    assert samples[("rfqueue_redis_up", ())] == 0
    assert not any(name == "rfqueue_queue_depth" for name, _ in samples)
    assert PASSWORD not in text


def test_workers_of_each_pool_by_state(table, client, settings):
    from rfqueue.table.service import Service

    # Given two video workers (one paused), one of video and audio, one from before pools
    table.register("v1@h", "rfqueue.v1@h", Service.of(["video"], ["t"]))
    table.register("v2@h", "rfqueue.v2@h", Service.of(["video"], ["t"]))
    table.register("va@h", "rfqueue.va@h", Service.of(["video", "audio"], ["t"]))
    table.register("old@h", "rfqueue.old@h")
    table.pause("v1@h", 60, Reason.CHAOS)
    # When scraped, with "jobs" as the app's default queue
    _, samples = scrape(TableCollector(settings, table, default_pool="jobs"))

    # Then each pool counts its workers by state; the old one is in the default queue's
    def pool(name: str, state: str) -> float:
        return samples[("rfqueue_pool_workers", (("pool", name), ("state", state)))]

    assert (pool("video", "up"), pool("video", "paused"), pool("video", "down")) == (2, 1, 0)
    assert (pool("audio", "up"), pool("jobs", "up")) == (1, 1)
