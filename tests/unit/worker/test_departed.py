"""The departed: outside the budget and spread, looked at now and then, forgotten when empty."""

from __future__ import annotations

import time

from rfqueue.brokers.redis import RedisBroker
from rfqueue.routing.policies.round_robin import RoundRobinPolicy
from rfqueue.settings import Settings
from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import policy_chooser
from rfqueue.worker.departed import Departures
from rfqueue.worker.rescue import Rescuer
from tests.unit.conftest import FakeClock, beat_while
from tests.unit.worker.test_rescue import TIMEOUT, World, q

W1, W2, W3, GONE = "w1@h", "w2@h", "w3@h", "gen123@h"
DEPARTED, FORGET = 20.0, 40.0


def fleet_with_a_departed(table: FailureTable, clock: FakeClock, silence: int) -> None:
    """w1..w3 beat for ``silence`` seconds while GONE, down since the start, says nothing."""
    clock.now = time.time() - silence
    for worker in (W1, W2, W3, GONE):
        table.register(worker, q(worker))
    table.mark_down(GONE, Reason.HEARTBEAT)
    beat_while(table, clock, silence, W1, W2, W3)


def test_a_departed_worker_does_not_count_against_the_chaos_budget(
    table: FailureTable, clock: FakeClock
) -> None:
    # Given max_paused=1 and a worker down and silent for 30 s (departed after 20)
    fleet_with_a_departed(table, clock, 30)
    budget = Budget(max_paused=1, min_up=1, departed_after=DEPARTED)
    now = table.now()
    # Then chaos may still pause one worker: the departed one is out of the count
    assert budget.allows_in_pools(table.entries()[W1], table.entries().values(), now)
    assert table.pause(W1, 10, Reason.CHAOS, budget=budget).changed
    assert table.pause(W2, 10, Reason.CHAOS, budget=budget).status == "budget"
    # While without departed_after it counts as one of the fleet out already
    table.resume(W1)
    assert table.pause(W1, 10, Reason.CHAOS, budget=Budget(1, 1)).status == "budget"


def test_a_down_worker_not_yet_departed_still_counts(table: FailureTable, clock: FakeClock) -> None:
    fleet_with_a_departed(table, clock, 10)
    budget = Budget(max_paused=1, min_up=1, departed_after=DEPARTED)
    assert table.pause(W1, 10, Reason.CHAOS, budget=budget).status == "budget"


def test_spread_and_depth_reads_skip_the_departed(table: FailureTable, clock: FakeClock) -> None:
    fleet_with_a_departed(table, clock, 30)
    snapshot = Snapshot(table, heartbeat_timeout=TIMEOUT, departed_after=DEPARTED)
    snapshot.refresh()
    assert q(GONE) not in snapshot.all_queues
    assert q(GONE) not in snapshot.pools.registered_in("celery", "celery")
    assert GONE in snapshot.entries  # still in the table, and in `rfqueue status`


def departed_world(world: World) -> Rescuer:
    world.snapshot.departed_after = DEPARTED
    departures = Departures(world.table, DEPARTED, FORGET)
    choose = policy_chooser(RoundRobinPolicy(Settings()))
    return Rescuer(world.snapshot, RedisBroker(world.client), choose, TIMEOUT,
                   departures=departures)  # fmt: skip


def test_the_rescuer_forgets_a_long_silent_worker_with_nothing_left(world: World) -> None:
    rescuer = departed_world(world)
    fleet_with_a_departed(world.table, world.clock, 45)
    world.snapshot.refresh()
    report = rescuer.run_once()
    assert report.forgotten == [GONE]
    assert GONE not in world.table.entries()
    assert world.table.events(1)[0].reason == "departed"


def test_a_departed_worker_with_tasks_is_emptied_first(world: World) -> None:
    # Given a worker silent for 45 s (forget after 40) with 3 tasks waiting and 1 unacked
    rescuer = departed_world(world)
    fleet_with_a_departed(world.table, world.clock, 45)
    world.broker.send(q(GONE), 4)
    world.broker.take_unacked(q(GONE), 1)
    world.snapshot.refresh()
    # When the rescuer looks: it moves the waiting tasks and restores the unacked one
    first = rescuer.run_once()
    assert sum(first.moved.values()) == 3 and first.forgotten == []
    assert world.unacked_queues() == {}
    # Then, on its next look, there is nothing left: it is forgotten
    rescuer.departures._next_look = float("-inf")  # type: ignore[union-attr]
    assert rescuer.run_once().forgotten == [GONE]


def test_the_departed_are_looked_at_only_now_and_then(world: World) -> None:
    rescuer = departed_world(world)
    fleet_with_a_departed(world.table, world.clock, 30)  # departed, not yet to be forgotten
    world.snapshot.refresh()
    rescuer.run_once()  # the first round looks
    world.broker.send(q(GONE), 2)  # (spread no longer sends there; say someone did)
    assert rescuer.run_once().moved == {}  # the next ones do not, for departed_after / 2
    rescuer.departures._next_look = float("-inf")  # type: ignore[union-attr]
    assert sum(rescuer.run_once().moved.values()) == 2
