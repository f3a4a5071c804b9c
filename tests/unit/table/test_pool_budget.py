"""The budget inside every pool: pause.lua checks it in the step that takes the pause."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import fakeredis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.service import Service, pools_or_default

P1, P2, V1, V2, V3 = "p1@h", "p2@h", "v1@h", "v2@h", "v3@h"
POOLS = {P1: ["celery"], P2: ["celery"], V1: ["video"], V2: ["video"], V3: ["video"]}


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def two_pools(table: FailureTable) -> FailureTable:
    """Two workers consume celery, three consume video."""
    for worker, pools in POOLS.items():
        table.register(worker, q(worker), Service.of(pools, ["app.t"]))
    return table


@pytest.fixture
def fleet(table: FailureTable) -> FailureTable:
    return two_pools(table)


def chaos(table: FailureTable, worker: str, budget: Budget) -> str:
    return table.pause(worker, 60, Reason.CHAOS, budget=budget).status


class TestSimpleCase:
    def test_the_last_up_worker_of_a_pool_stays_up_though_the_fleet_has_room(
        self, fleet: FailureTable
    ) -> None:
        # Given a fleet-wide budget of three out of five, one of each pool up at least
        budget = Budget(3, min_up=1)
        # Then two video workers may pause, the third may not (the fleet would allow it)
        assert chaos(fleet, V1, budget) == "ok"
        assert chaos(fleet, V2, budget) == "ok"
        assert chaos(fleet, V3, budget) == "budget"
        # And the celery pool still has its own room
        assert chaos(fleet, P1, budget) == "ok"
        assert chaos(fleet, P2, budget) == "budget"

    def test_max_paused_holds_in_each_pool(self, fleet: FailureTable) -> None:
        budget = Budget(1, min_up=0)
        assert chaos(fleet, V1, budget) == "ok"
        assert chaos(fleet, V2, budget) == "budget"  # the fleet-wide one, too

    def test_a_fraction_is_of_the_pool(self, fleet: FailureTable) -> None:
        # 50 % of five is 2 fleet-wide; of the celery pool's two, 1
        budget = Budget(0.5, min_up=0)
        assert chaos(fleet, P1, budget) == "ok"
        assert chaos(fleet, P2, budget) == "budget"
        assert chaos(fleet, V1, budget) == "ok"

    def test_one_pool_is_the_fleet(self, table: FailureTable) -> None:
        for worker in (P1, P2):
            table.register(worker, q(worker), Service.of(["celery"], ["app.t"]))
        assert chaos(table, P1, Budget(1)) == "ok"
        assert chaos(table, P2, Budget(2)) == "budget"  # min_up 1


class TestOverrides:
    def test_a_pool_max_paused(self, fleet: FailureTable) -> None:
        budget = Budget(3, min_up=0, pool_max_paused={"video": 1})
        assert chaos(fleet, V1, budget) == "ok"
        assert chaos(fleet, V2, budget) == "budget"
        assert chaos(fleet, P1, budget) == "ok"
        assert chaos(fleet, P2, budget) == "ok"  # celery: max_paused 3, min_up 0

    def test_a_pool_min_up(self, fleet: FailureTable) -> None:
        budget = Budget(4, min_up=0, pool_min_up={"video": 2})
        assert chaos(fleet, V1, budget) == "ok"
        assert chaos(fleet, V2, budget) == "budget"

    def test_a_down_worker_counts_in_its_pool(self, fleet: FailureTable) -> None:
        fleet.mark_down(V1, Reason.HEARTBEAT)
        assert chaos(fleet, V2, Budget(3, min_up=0, pool_max_paused={"video": 1})) == "budget"

    def test_a_worker_of_two_pools_fits_both(self, table: FailureTable) -> None:
        table.register(P1, q(P1), Service.of(["celery", "video"], ["app.t"]))
        table.register(P2, q(P2), Service.of(["celery"], ["app.t"]))
        table.register(V1, q(V1), Service.of(["video"], ["app.t"]))
        table.pause(V1, 60, Reason.MANUAL)
        # celery has room for one, but video would have nobody up
        assert chaos(table, P1, Budget(3, min_up=1)) == "budget"
        assert chaos(table, P2, Budget(3, min_up=1)) == "ok"

    def test_entries_without_pools_are_in_the_default_pool(self, table: FailureTable) -> None:
        table.register(P1, q(P1))
        table.register(P2, q(P2))
        budget = Budget(2, min_up=0, pool_max_paused={"jobs": 1}, default_pool="jobs")
        assert chaos(table, P1, budget) == "ok"
        assert chaos(table, P2, budget) == "budget"

    def test_manual_pauses_ignore_it(self, fleet: FailureTable) -> None:
        for worker in (V1, V2, V3):
            assert fleet.pause(worker, 60, Reason.MANUAL).status == "ok"


def not_up_by_pool(table: FailureTable) -> dict[str, int]:
    now, counts = time.time(), {"celery": 0, "video": 0}
    for e in table.entries().values():
        if e.effective_state(now) is not State.UP:
            for pool in e.pools:
                counts[pool] += 1
    return counts


def test_two_racing_pausers_never_exceed_any_pool(server: fakeredis.FakeServer) -> None:
    # Given two chaos processes hammering two pools with room for one out in each
    tables = [
        FailureTable(fakeredis.FakeRedis(server=server, decode_responses=True), "race")
        for _ in range(2)
    ]
    two_pools(tables[0])
    budget = Budget(2, min_up=1, pool_max_paused={"video": 1})
    workers = list(POOLS)
    violations: list[dict[str, int]] = []
    oks = [0, 0]
    barrier = threading.Barrier(2)

    def check(table: FailureTable) -> None:
        counts = not_up_by_pool(table)
        if counts["celery"] > 1 or counts["video"] > 1 or sum(counts.values()) > 2:
            violations.append(counts)

    def hammer(index: int) -> None:
        table = tables[index]
        barrier.wait()
        for i in range(200):
            worker = workers[(i * 3 + index) % len(workers)]
            if chaos(table, worker, budget) == "ok":
                oks[index] += 1
            check(table)
            if i % 2 == index:
                table.resume(worker, Reason.MANUAL)
            check(table)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Then no pool was ever over its budget, yet both took pauses
    assert violations == []
    assert oks[0] > 0 and oks[1] > 0


# -- the preview (a dry run) agrees with the script ------------------------------------

WORKERS = [f"w{i}@h" for i in range(5)]
pool_sets = st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True)
limits = st.one_of(st.integers(0, 4), st.floats(0.1, 0.9))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pools=st.lists(pool_sets, min_size=5, max_size=5),
    out=st.lists(st.booleans(), min_size=5, max_size=5),
    max_paused=limits,
    min_up=st.integers(0, 3),
    a_max=st.one_of(st.none(), limits),
    b_min=st.one_of(st.none(), st.integers(0, 3)),
)
def test_the_preview_agrees_with_the_script(
    pools: Sequence[list[str]],
    out: Sequence[bool],
    max_paused: int | float,
    min_up: int,
    a_max: int | float | None,
    b_min: int | None,
) -> None:
    table = FailureTable(fakeredis.FakeRedis(decode_responses=True), "agree")
    for worker, served in zip(WORKERS, pools, strict=True):
        table.register(worker, q(worker), Service.of(served, ["t"]))
    for worker, is_out in zip(WORKERS[1:], out[1:], strict=True):
        if is_out:
            table.pause(worker, 60, Reason.MANUAL)
    budget = Budget(
        max_paused,
        min_up,
        {"a": a_max} if a_max is not None else {},
        {"b": b_min} if b_min is not None else {},
        default_pool="a",
    )
    entries = table.entries()
    now = time.time()
    not_up = sum(e.effective_state(now) is not State.UP for e in entries.values())
    preview = budget.allows(not_up, len(entries)) and budget.allows_in_pools(
        entries[WORKERS[0]], entries.values(), now
    )
    assert (chaos(table, WORKERS[0], budget) == "ok") == preview
    assert pools_or_default(entries[WORKERS[0]].pools, "a")
