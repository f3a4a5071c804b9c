"""The series the alert rules and the dashboard read, each from what Redis holds at the scrape."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from rfqueue.brokers.redis import RedisBroker
from rfqueue.brokers.redis_layout import BrokerLayout, queue_lists
from rfqueue.keys import Keys
from rfqueue.monitoring.fleet import pool_budget_families, pool_families
from rfqueue.monitoring.metrics import TableCollector, broker_readers
from rfqueue.monitoring.oldest import OldestTasks
from rfqueue.monitoring.routers import GONE_AFTER
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.budget import Budget
from rfqueue.table.entry import Entry, Reason, State
from tests.unit.conftest import NAMESPACE, FakeClock
from tests.unit.monitoring.test_metrics import scrape

KEYS = Keys(NAMESPACE)
W1, W2, W3 = "w1@h", "w2@h", "w3@h"


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def series(samples: dict[Any, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


def settings(**changes: Any) -> Settings:
    return Settings.load({}, environ={}, redis_url="redis://x:6379/0", namespace=NAMESPACE,
                         **changes)  # fmt: skip


@pytest.fixture
def fleet(table: FailureTable, clock: FakeClock) -> FailureTable:
    clock.now = time.time()
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    return table


def message(tag: str, body: str = "") -> str:
    """A kombu message as the Redis transport stores it (the parts that matter here)."""
    return json.dumps({"body": body, "properties": {"delivery_tag": tag}, "headers": {}})


# -- the budget, pools ------------------------------------------------------------------


def test_the_budget_and_the_chaos_pauses_are_exposed(fleet, client):
    # Given a budget of a third of the fleet, one chaos pause and one manual pause
    fleet.pause(W1, 60, Reason.CHAOS)
    fleet.pause(W2, 60, Reason.MANUAL)
    _, samples = scrape(TableCollector(settings(max_paused=0.34, min_up=2), fleet))
    # Then max_paused is resolved for 3 workers as pause.lua does (floor), beside min_up
    assert samples[("rfqueue_budget_max_paused", ())] == 1
    assert samples[("rfqueue_budget_min_up", ())] == 2
    # And only the chaos pause counts as chaos's
    assert samples[("rfqueue_chaos_paused", ())] == 1


def test_the_budget_leaves_the_departed_out_as_pause_lua_does(fleet, client, clock):
    # Given w3 down and silent for 60 s (departed after 50 s) while w1 and w2 beat
    fleet.mark_down(W3, Reason.HEARTBEAT)
    for _ in range(60):
        clock.advance(1)
        fleet.heartbeat(W1, q(W1))
        fleet.heartbeat(W2, q(W2))
    _, samples = scrape(TableCollector(settings(max_paused=0.67, departed_after=50), fleet))
    # Then two thirds of the two present workers (1), not of three (2)
    assert samples[("rfqueue_budget_max_paused", ())] == 1
    assert series(samples, "rfqueue_pool_budget_max_paused") == {(("pool", "celery"),): 1}


def test_workers_without_pools_count_in_the_default_queues_pool(fleet, client):
    fleet.pause(W3, 60, Reason.CHAOS)
    _, samples = scrape(TableCollector(settings(), fleet))
    pools = series(samples, "rfqueue_pool_workers")
    assert pools[(("pool", "celery"), ("state", "up"))] == 2
    assert pools[(("pool", "celery"), ("state", "paused"))] == 1
    assert pools[(("pool", "celery"), ("state", "down"))] == 0


def pooled(name: str, pools: tuple[str, ...], now: float, until: float | None = None) -> Entry:
    """An up worker of ``pools``, or paused by chaos until ``until``."""
    state = State.PAUSED if until else State.UP
    reason = Reason.CHAOS if until else None
    return Entry(name, q(name), state, reason, now - 1, until, 1, pools=pools)


def two_pools(now: float) -> dict[str, Entry]:
    return {
        W1: pooled(W1, ("celery",), now),
        W2: pooled(W2, ("celery", "video"), now),
        W3: pooled(W3, ("video",), now, until=now + 60),
    }


def test_a_worker_counts_in_every_pool_it_serves():
    now = time.time()
    entries = two_pools(now)
    [family] = pool_families(entries, now)
    values = {(s.labels["pool"], s.labels["state"]): s.value for s in family.samples}
    assert values[("celery", "up")] == 2
    assert values[("video", "up")] == 1 and values[("video", "paused")] == 1
    assert "default" not in {pool for pool, _ in values}


def test_the_budget_inside_each_pool_is_exposed():
    # Given two pools of two workers, one worker of video paused by chaos, and a
    # budget of half of each pool with video's own min_up
    now = time.time()
    budget = Budget.from_settings(settings(max_paused=0.5, pool_min_up=("video=1",)))
    families = {f.name: f for f in pool_budget_families(budget, two_pools(now).values(), now)}

    def values(name: str) -> dict[str, float]:
        return {s.labels["pool"]: s.value for s in families[name].samples}

    # Then each pool's limits are resolved for its own size, as pause.lua resolves them
    assert values("rfqueue_pool_budget_max_paused") == {"celery": 1, "video": 1}
    assert values("rfqueue_pool_budget_min_up") == {"celery": 1, "video": 1}
    assert values("rfqueue_pool_chaos_paused") == {"celery": 0, "video": 1}


# -- drains and ejections, from the event log --------------------------------------------


def push_event(client: Any, table: FailureTable, **fields: Any) -> None:
    """An event as a script of the coming lifecycle work would log it."""
    version = int(client.incr(KEYS.version))
    event = {"time": time.time(), "state": None, "until": None, "note": None, "reason": None,
             "version": version, **fields}  # fmt: skip
    client.lpush(KEYS.events, json.dumps(event))


def test_ejections_and_drains_are_counted_from_the_event_log(fleet, client):
    # Given every counter present from zero, before anything happened
    collector = TableCollector(settings(), fleet)
    _, samples = scrape(collector)
    assert series(samples, "rfqueue_ejections_total") == {(("worker", w),): 0 for w in (W1, W2, W3)}
    assert series(samples, "rfqueue_drains_total")[(("reason", "manual"),)] == 0
    assert series(samples, "rfqueue_pauses_total")[(("reason", "chaos"),)] == 0

    # When w2 is ejected (a pause for reason outlier) and w3 begins draining
    push_event(client, fleet, worker=W2, action="pause", reason="outlier", state="paused")
    push_event(client, fleet, worker=W3, action="drain", reason="shutdown", state="draining")
    _, samples = scrape(collector)
    # And w3 logs another event while draining (its pools changed, say): not a new drain
    push_event(client, fleet, worker=W3, action="serve", reason=None, state="draining")
    _, samples = scrape(collector)

    # Then each is counted once
    assert samples[("rfqueue_ejections_total", (("worker", W2),))] == 1
    assert samples[("rfqueue_ejections_total", (("worker", W1),))] == 0
    assert samples[("rfqueue_drains_total", (("reason", "shutdown"),))] == 1
    assert samples[("rfqueue_pauses_total", (("reason", "outlier"),))] == 1


def test_a_real_drain_shows_in_the_state_gauges_and_the_counter(fleet, client):
    collector = TableCollector(settings(), fleet)
    scrape(collector)
    # When w3's shutdown begins (the table's own drain script, not a made-up event)
    fleet.drain(W3, Reason.SHUTDOWN)
    _, samples = scrape(collector)
    # Then it counts as draining, once, and not as up
    assert samples[("rfqueue_workers", (("state", "draining"),))] == 1
    assert samples[("rfqueue_worker_state", (("state", "draining"), ("worker", W3)))] == 1
    assert samples[("rfqueue_worker_state", (("state", "up"), ("worker", W3)))] == 0
    assert samples[("rfqueue_drains_total", (("reason", "shutdown"),))] == 1


# -- the oldest waiting task ------------------------------------------------------------


def test_the_oldest_task_ages_while_it_waits_at_the_head(fleet, client):
    # Given a paused worker's queue with two tasks, the exporter's clock moved by hand
    fleet.pause(W2, 60, Reason.MANUAL)
    client.lpush(q(W2), message("a"), message("b"))  # "a" is at the consuming end
    collector = TableCollector(settings(), fleet)
    clock = FakeClock(1000.0)
    collector.oldest.clock = clock
    key = ("rfqueue_queue_oldest_task_age_seconds", (("queue", q(W2)), ("worker", W2)))

    # When scraped now and 30 s later, then its head has waited 0 s, then 30 s
    assert scrape(collector)[1][key] == 0
    clock.advance(30)
    assert scrape(collector)[1][key] == 30
    # And an empty queue is 0
    assert scrape(collector)[1][(key[0], (("queue", q(W1)), ("worker", W1)))] == 0

    # When the head is consumed, then the next one's age counts from when it came to the head
    client.rpop(q(W2))
    clock.advance(5)
    assert scrape(collector)[1][key] == 0
    clock.advance(2)
    assert scrape(collector)[1][key] == 2


def test_a_head_is_known_by_its_delivery_tag_and_every_priority_list_counts(client):
    lists = queue_lists("q")
    heads: dict[str, list[str | None]] = {"q": [message("a"), None, None, None]}
    clock = FakeClock(0.0)
    oldest = OldestTasks(lambda queues: heads, clock)
    assert oldest.ages(["q"]) == {"q": 0}
    # The same message put back with other bytes (kombu's restore rewrites it): same age
    clock.advance(10)
    heads["q"] = [message("a", body="again"), message("p"), None, None]
    assert oldest.ages(["q"]) == {"q": 10}
    # The priority list's head ages too; the queue's age is its oldest head
    clock.advance(10)
    heads["q"] = [None, message("p"), None, None]
    assert oldest.ages(["q"]) == {"q": 10}
    # Something that is not a kombu message is known by its own text
    heads["q"] = ["not json", None, None, None]
    assert oldest.ages(["q"]) == {"q": 0}
    assert len(lists) == 4


def test_a_redis_broker_with_a_key_prefix_gives_its_own_heads(fleet, client):
    # Given a broker whose kombu transport prefixes its keys, a task waiting in w2's queue
    broker = RedisBroker(client, BrokerLayout(prefix="app:"))
    fleet.pause(W2, 60, Reason.MANUAL)
    client.lpush(f"app:{q(W2)}", message("a"))
    depths, heads = broker_readers(broker)
    collector = TableCollector(settings(), fleet, depths=depths, heads=heads)
    clock = FakeClock(0.0)
    collector.oldest.clock = clock
    key = ("rfqueue_queue_oldest_task_age_seconds", (("queue", q(W2)), ("worker", W2)))
    scrape(collector)
    clock.advance(3)
    _, samples = scrape(collector)
    # Then its depth and its head's age are read where kombu keeps them
    assert samples[("rfqueue_queue_depth", (("queue", q(W2)), ("worker", W2)))] == 1
    assert samples[key] == 3


# -- rescues -------------------------------------------------------------------------------


def test_rescue_counts_and_the_latency_histogram(fleet, client):
    # Given what rescuers recorded: 5 moved out of w3 (3 to w1, 2 to w2), 1 restored to w1,
    # and three latencies: 0.2 s, 0.4 s and 42 s
    client.hset(KEYS.rescued, mapping={f"from:{q(W3)}": 5, f"to:{q(W1)}": 3, f"to:{q(W2)}": 2,
                                       f"restored:{q(W1)}": 1})  # fmt: skip
    client.hset(KEYS.rescue_latency, mapping={"0.25": 1, "0.5": 1, "60": 1, "count": 3,
                                              "sum": 42.6})  # fmt: skip

    _, samples = scrape(TableCollector(settings(), fleet))

    assert samples[("rfqueue_tasks_rescued_from_total", (("queue", q(W3)),))] == 5
    assert samples[("rfqueue_tasks_rescued_to_total", (("queue", q(W1)),))] == 3
    assert samples[("rfqueue_tasks_restored_total", (("queue", q(W1)),))] == 1
    buckets = {dict(labels)["le"]: v for labels, v in
               series(samples, "rfqueue_rescue_latency_seconds_bucket").items()}  # fmt: skip
    assert (buckets["0.1"], buckets["0.25"], buckets["0.5"], buckets["30.0"]) == (0, 1, 2, 2)
    assert buckets["60.0"] == buckets["+Inf"] == 3
    assert samples[("rfqueue_rescue_latency_seconds_count", ())] == 3
    assert samples[("rfqueue_rescue_latency_seconds_sum", ())] == pytest.approx(42.6)


def test_before_any_rescue_every_queue_counts_from_zero(fleet, client):
    _, samples = scrape(TableCollector(settings(), fleet))
    assert samples[("rfqueue_rescue_latency_seconds_count", ())] == 0
    for name in ("from", "to"):
        zeros = series(samples, f"rfqueue_tasks_rescued_{name}_total")
        assert zeros == {(("queue", q(w)),): 0 for w in (W1, W2, W3)}


# -- routers --------------------------------------------------------------------------------


def test_router_snapshot_ages_and_gone_routers_dropped(fleet, client):
    now = time.time()
    client.hset(KEYS.routers, mapping={
        "h:1": json.dumps({"read": now - 0.5, "interval": 1.0, "reported": now}),
        "h:2": json.dumps({"read": now - 90, "interval": 1.0, "reported": now - 89}),
        "h:3": json.dumps({"read": now - 2 * GONE_AFTER, "interval": 1.0,
                           "reported": now - GONE_AFTER - 1}),
        "h:4": "not a record",
    })  # fmt: skip

    _, samples = scrape(TableCollector(settings(), fleet))

    ages = series(samples, "rfqueue_router_snapshot_age_seconds")
    assert set(ages) == {(("router", "h:1"),), (("router", "h:2"),)}
    assert ages[(("router", "h:1"),)] == pytest.approx(0.5, abs=1)
    assert ages[(("router", "h:2"),)] == pytest.approx(90, abs=1)
    assert samples[("rfqueue_router_refresh_interval_seconds", (("router", "h:2"),))] == 1
    assert samples[("rfqueue_routers", ())] == 2
    # The gone router's field and the malformed one are dropped from Redis
    assert set(client.hgetall(KEYS.routers)) == {"h:1", "h:2"}


def test_downs_are_counted_per_worker_for_flapping(fleet, client, clock):
    collector = TableCollector(settings(), fleet)
    scrape(collector)
    # When w1 goes down twice (back up by a beat in between) and w2 once
    fleet.mark_down(W1, Reason.HEARTBEAT)
    fleet.heartbeat(W1, q(W1))
    fleet.mark_down(W1, Reason.HEARTBEAT)
    fleet.mark_down(W2, Reason.SHUTDOWN)
    _, samples = scrape(collector)
    downs = series(samples, "rfqueue_worker_downs_total")
    assert downs == {(("worker", W1),): 2, (("worker", W2),): 1, (("worker", W3),): 0}
