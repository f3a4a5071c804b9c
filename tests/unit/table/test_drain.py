"""Draining: drain.lua, and how every other script treats a draining worker."""

from __future__ import annotations

from typing import Any

from rfqueue.table import Budget, FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.snapshot import Snapshot
from tests.unit.conftest import beat_while
from tests.unit.table.test_failure_table import W1, W2, W3, actions, entry_of, q, register


class TestDrain:
    def test_shutdown_drain_leaves_the_routable_set_until_the_worker_stops(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Given two up workers
        register(table, W1, W2)
        # When w1's shutdown begins
        change = table.drain(W1, Reason.SHUTDOWN)
        # Then it is draining, with no end, and announced like every change
        assert change.status == "ok"
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until, e.since) == (
            State.DRAINING, Reason.SHUTDOWN, None, clock.now,
        )  # fmt: skip
        assert actions(table)[-1] == (W1, "drain", "shutdown")
        # And no router chooses it, however long it takes
        clock.advance(10_000)
        table.heartbeat(W1, q(W1), entry_of(table, W1).version)
        table.heartbeat(W2, q(W2), entry_of(table, W2).version)
        snapshot = Snapshot(table, heartbeat_timeout=5)
        snapshot.refresh()
        assert snapshot.up_queues == (q(W2),)

    def test_heartbeats_keep_it_draining(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.drain(W1, Reason.SHUTDOWN)
        for _ in range(5):
            clock.advance(1)
            # Then every beat records the beat and changes nothing else
            change = table.heartbeat(W1, q(W1), entry_of(table, W1).version)
            assert change.status == "noop"
            assert change.entry is not None and change.entry.state is State.DRAINING
        assert entry_of(table, W1).heartbeat == clock.now

    def test_the_exit_marks_it_down_and_a_restart_up(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.drain(W1, Reason.MANUAL, seconds=600)
        table.drain(W1, Reason.SHUTDOWN)  # then the worker's own shutdown: until it stops
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.DRAINING, Reason.SHUTDOWN, None)
        # When it stops, it is down (no pause kept from the drain)
        table.mark_down(W1, Reason.SHUTDOWN)
        e = entry_of(table, W1)
        assert (e.state, e.reason, e.until) == (State.DOWN, Reason.SHUTDOWN, None)
        # And a new start is up
        table.register(W1, q(W1))
        assert entry_of(table, W1).state is State.UP

    def test_an_operator_drain_ends_at_its_until(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.drain(W1, Reason.MANUAL, seconds=30, note="deploy 42")
        e = entry_of(table, W1)
        assert (e.state, e.until, e.note) == (State.DRAINING, clock.now + 30, "deploy 42")
        clock.advance(29)
        assert table.heartbeat(W1, q(W1), e.version).status == "noop"
        clock.advance(2)
        # Then the next beat (or expiry) makes it up again
        change = table.heartbeat(W1, q(W1), e.version)
        assert change.status == "ok" and change.entry is not None
        assert change.entry.state is State.UP
        assert actions(table)[-1] == (W1, "resume", "expired")

    def test_expire_ends_an_operator_drain_but_never_a_shutdown_drain(
        self, table: FailureTable, clock: Any
    ) -> None:
        register(table, W1, W2)
        table.drain(W1, Reason.MANUAL, seconds=5)
        table.drain(W2, Reason.SHUTDOWN)
        clock.advance(6)
        assert [e.worker for e in table.resume_expired()] == [W1]
        assert entry_of(table, W2).state is State.DRAINING

    def test_a_drain_under_way_until_the_stop_is_not_shortened(
        self, table: FailureTable, clock: Any
    ) -> None:
        register(table, W1)
        table.drain(W1, Reason.SHUTDOWN)
        change = table.drain(W1, Reason.MANUAL, seconds=5)
        assert change.status == "noop"
        assert entry_of(table, W1).until is None

    def test_resume_ends_an_operator_drain_not_a_shutdown(
        self, table: FailureTable, clock: Any
    ) -> None:
        register(table, W1, W2)
        table.drain(W1, Reason.MANUAL, seconds=60)
        assert table.resume(W1).status == "ok"
        assert entry_of(table, W1).state is State.UP
        table.drain(W2, Reason.SHUTDOWN)
        assert table.resume(W2).status == "state"
        assert entry_of(table, W2).state is State.DRAINING

    def test_a_draining_worker_cannot_be_paused(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.drain(W1, Reason.SHUTDOWN)
        assert table.pause(W1, 10, Reason.MANUAL).status == "state"
        assert entry_of(table, W1).state is State.DRAINING

    def test_a_paused_worker_that_stops_keeps_its_pause(
        self, table: FailureTable, clock: Any
    ) -> None:
        # Its own shutdown changes nothing: it takes nothing already, and restarted it
        # comes back paused until the pause's end (as before drains existed)
        register(table, W1)
        until = table.pause(W1, 100, Reason.CHAOS).entry.until
        assert table.drain(W1, Reason.SHUTDOWN).status == "noop"
        table.mark_down(W1, Reason.SHUTDOWN)
        table.register(W1, q(W1))
        e = entry_of(table, W1)
        assert (e.state, e.until) == (State.PAUSED, until)

    def test_an_operator_drain_replaces_a_pause(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.pause(W1, 100, Reason.CHAOS)
        assert table.drain(W1, Reason.MANUAL, seconds=50).status == "ok"
        assert entry_of(table, W1).state is State.DRAINING

    def test_down_unknown_and_bad_durations(self, table: FailureTable, clock: Any) -> None:
        register(table, W1)
        table.mark_down(W1, Reason.SHUTDOWN)
        assert table.drain(W1, Reason.MANUAL).status == "state"
        assert table.drain("nobody@h", Reason.MANUAL).status == "unknown"
        register(table, W2)
        assert table.drain(W2, Reason.MANUAL, seconds=table.max_pause + 1).status == "duration"
        assert entry_of(table, W2).state is State.UP

    def test_silence_while_draining_is_death(self, table: FailureTable, clock: Any) -> None:
        # Given a draining worker killed with SIGKILL: its beats stop
        register(table, W1, W2)
        table.drain(W1, Reason.SHUTDOWN)
        beat_while(table, clock, 6, W2)
        # Then the reap marks it down for want of a heartbeat (the rescue restores its tasks)
        reaped = table.reap(5)
        assert [(e.worker, e.state, e.reason) for e in reaped] == [
            (W1, State.DOWN, Reason.HEARTBEAT)
        ]


class TestBudget:
    def test_draining_counts_as_not_up_for_chaos(self, table: FailureTable, clock: Any) -> None:
        # Given three workers, one draining, and a budget of one out at a time
        register(table, W1, W2, W3)
        table.drain(W1, Reason.SHUTDOWN)
        # Then chaos may pause nobody: the drain already uses the budget (in every pool too)
        budget = Budget(max_paused=1, min_up=1)
        assert table.pause(W2, 10, Reason.CHAOS, budget=budget).status == "budget"
        # And a drain itself is never refused by the budget (a deploy is not chaos)
        assert table.drain(W2, Reason.MANUAL, seconds=60).status == "ok"
