"""Outlier ejection: heartbeat.lua records outcomes and judges; pause.lua ejects in budget."""

from __future__ import annotations

import json

import pytest

from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.outliers import Outcomes, OutlierRules
from rfqueue.table.service import Service
from tests.unit.conftest import FakeClock

W1, W2, W3, W4 = "w1@h", "w2@h", "w3@h", "w4@h"
RULES = OutlierRules(consecutive_failures=5, base_ejection=30, min_requests=10, gap=0.5,
                     max_ejection_percent=10, interval=10, max_pause=3600)  # fmt: skip
BUDGET = Budget(max_paused=1, min_up=1)


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def fleet(table: FailureTable) -> FailureTable:
    for worker in (W1, W2, W3):
        table.register(worker, q(worker), Service.of(["celery"], ["app.t"]))
    return table


def beat(table: FailureTable, worker: str, ok: int, failed: int, streak: int = 0):  # type: ignore[no-untyped-def]
    return table.heartbeat(worker, q(worker), outcomes=Outcomes(ok, failed, streak), rules=RULES)


def window(table: FailureTable, worker: str) -> dict[str, float]:
    return dict(json.loads(table.client.hget(table.keys.outcomes, worker)))


def test_the_table_adds_outcomes_to_the_window_and_tracks_the_streak(fleet: FailureTable) -> None:
    beat(fleet, W1, 3, 2, streak=2)
    beat(fleet, W1, 0, 2)  # no success: the streak grows by the failures
    got = window(fleet, W1)
    assert (got["ok"], got["fail"], got["streak"]) == (3, 4, 4)
    beat(fleet, W1, 1, 1, streak=1)  # a success in the batch: its own tail counts
    assert window(fleet, W1)["streak"] == 1


def test_a_window_moves_on_by_intervals(fleet: FailureTable, clock: FakeClock) -> None:
    beat(fleet, W1, 4, 1)
    clock.advance(11)
    beat(fleet, W1, 1, 0)
    got = window(fleet, W1)
    assert (got["prev_ok"], got["prev_fail"], got["ok"]) == (4, 1, 1)
    clock.advance(25)  # two intervals on: nothing old is left
    beat(fleet, W1, 1, 0)
    assert (window(fleet, W1)["prev_ok"], window(fleet, W1)["ok"]) == (0, 1)


def test_five_failures_in_a_row_while_the_others_succeed_is_an_outlier(
    fleet: FailureTable,
) -> None:
    # Given the others finished their tasks well
    beat(fleet, W2, 10, 0)
    beat(fleet, W3, 10, 0)
    # When w1 reports four failures in a row, then a fifth
    assert beat(fleet, W1, 0, 4, 4).eject is None
    change = beat(fleet, W1, 0, 1, 5)
    # Then the table says: eject it for the base time, and why
    assert change.eject is not None
    assert change.eject.seconds == 30
    assert "5 failures in a row" in change.eject.note


def test_a_failure_rate_far_above_the_peers_is_an_outlier(fleet: FailureTable) -> None:
    beat(fleet, W2, 9, 1)
    beat(fleet, W3, 10, 0)
    change = beat(fleet, W1, 3, 7, 1)  # 70 % against 5 %
    assert change.eject is not None and "7 of 10 tasks failed" in change.eject.note
    assert beat(fleet, W2, 6, 4, 1).eject is None  # 40 % against 35 %: not far enough


def test_too_few_tasks_are_not_judged(fleet: FailureTable) -> None:
    beat(fleet, W2, 5, 0)  # the others have too few tasks to compare with (10)
    assert beat(fleet, W1, 0, 6, 6).eject is None
    beat(fleet, W1, 0, 0)
    assert beat(fleet, W1, 0, 0).eject is None  # a beat without failures judges nothing


def test_when_the_whole_pool_fails_alike_nobody_is_ejected(fleet: FailureTable) -> None:
    for worker in (W2, W3):
        beat(fleet, worker, 1, 9, 9)
    assert beat(fleet, W1, 0, 10, 10).eject is None
    assert beat(fleet, W2, 0, 5, 14).eject is None


def test_after_a_pool_failed_alike_a_worker_is_judged_again_a_little_later(
    fleet: FailureTable, clock: FakeClock
) -> None:
    # Given the whole pool failing alike: nobody ejected
    for worker in (W2, W3):
        beat(fleet, worker, 0, 10, 10)
    assert beat(fleet, W1, 0, 10, 10).eject is None
    # (once for the pool: the next worker's beat does not read the fleet again)
    assert float(fleet.client.hget(fleet.keys.outcomes, 'calm:["celery"]')) == clock.now + 2.5
    # When, a second later, the others recover (100 tasks each finish well)
    clock.advance(1)
    for worker in (W2, W3):
        beat(fleet, worker, 100, 0)
    # Then w1, still failing, is judged again only a quarter window (2.5 s) after the last look
    assert beat(fleet, W1, 0, 5, 15).eject is None
    clock.advance(2)
    assert beat(fleet, W1, 0, 5, 20).eject is not None


def test_peers_are_the_up_workers_of_its_pools(table: FailureTable) -> None:
    # Given w1 and w2 in celery, w3 in video: w3 does well, w2 fails as w1 does
    table.register(W1, q(W1), Service.of(["celery"], ["app.t"]))
    table.register(W2, q(W2), Service.of(["celery"], ["app.t"]))
    table.register(W3, q(W3), Service.of(["video"], ["app.t"]))
    beat(table, W3, 50, 0)
    beat(table, W2, 0, 10, 10)
    # Then w1 is no outlier: its pool fails alike; the other pool is no yardstick
    assert beat(table, W1, 0, 10, 10).eject is None


def test_an_ejection_is_a_budgeted_outlier_pause_and_the_window_starts_afresh(
    fleet: FailureTable, clock: FakeClock
) -> None:
    beat(fleet, W2, 10, 0)
    ejection = beat(fleet, W1, 0, 5, 5).eject
    assert ejection is not None
    change = fleet.pause(W1, ejection.seconds, Reason.OUTLIER, ejection.note, BUDGET)
    assert change.changed and change.entry is not None
    assert (change.entry.state, change.entry.reason) == (State.PAUSED, Reason.OUTLIER)
    assert change.entry.until == pytest.approx(clock.now + 30)
    event = fleet.events(1)[0]
    assert (event.action, event.reason, event.note) == ("pause", "outlier", ejection.note)
    got = window(fleet, W1)
    assert (got["fail"], got["streak"], got["ejections"]) == (0, 0, 1)
    # And a second worker is not ejected too: a pool of 3 ejects one at most (10 %, at
    # least one), and the chaos budget (max_paused=1) is spent anyway
    assert beat(fleet, W3, 0, 5, 5).eject is None
    assert fleet.pause(W3, 30, Reason.OUTLIER, budget=BUDGET).status == "budget"


def test_each_ejection_in_a_row_lasts_longer_and_the_count_is_forgotten(
    fleet: FailureTable, clock: FakeClock
) -> None:
    for expected in (30, 60, 90):
        beat(fleet, W2, 10, 0)
        ejection = beat(fleet, W1, 0, 5, 5).eject
        assert ejection is not None and ejection.seconds == expected
        fleet.pause(W1, ejection.seconds, Reason.OUTLIER, budget=BUDGET)
        clock.advance(ejection.seconds + 1)
        beat(fleet, W1, 0, 0)  # back up: its pause expired
    # After ten base times without an ejection, the next is a first one again
    clock.advance(301)
    beat(fleet, W2, 10, 0)
    ejection = beat(fleet, W1, 0, 5, 5).eject
    assert ejection is not None and ejection.seconds == 30


def test_max_ejection_percent_bounds_the_ejected_share_of_a_pool(table: FailureTable) -> None:
    # Given a pool of 4 where w1 is ejected already (10 % of 4 rounds down; one may be)
    for worker in (W1, W2, W3, W4):
        table.register(worker, q(worker), Service.of(["celery"], ["app.t"]))
    table.pause(W1, 30, Reason.OUTLIER)
    beat(table, W3, 20, 0)
    beat(table, W4, 20, 0)
    # Then w2, failing everything, is not ejected as well
    assert beat(table, W2, 0, 10, 10).eject is None


def test_a_paused_or_unjudged_beat_asks_for_nothing(fleet: FailureTable) -> None:
    beat(fleet, W2, 10, 0)
    fleet.pause(W1, 30, Reason.MANUAL)
    assert beat(fleet, W1, 0, 5, 5).eject is None  # already out
    change = fleet.heartbeat(W3, q(W3), outcomes=Outcomes(0, 5, 5))  # no rules: no judging
    assert change.eject is None


def test_forget_drops_the_window(fleet: FailureTable) -> None:
    beat(fleet, W1, 1, 0)
    fleet.mark_down(W1, Reason.SHUTDOWN)
    assert fleet.forget(W1).changed
    assert fleet.client.hget(fleet.keys.outcomes, W1) is None
