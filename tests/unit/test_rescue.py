"""The rescuer: one round over a real failure table, snapshot and kombu broker on fakeredis.

No thread runs here: each test refreshes the snapshot by hand and calls ``run_once``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fakeredis
import pytest

from rfqueue.entry import Reason, State
from rfqueue.policies import Policy, PolicyError
from rfqueue.policies.round_robin import RoundRobinPolicy
from rfqueue.rescue import RESCUE_TASK_NAME, Rescuer, policy_chooser
from rfqueue.settings import Settings
from rfqueue.snapshot import Snapshot
from rfqueue.stranded import StrandedMessages
from rfqueue.table import FailureTable
from tests.unit.conftest import FakeClock, beat_while
from tests.unit.test_stranded import Broker, kombu_broker

W1, W2, W3, W4 = "w1@h", "w2@h", "w3@h", "w4@h"
TIMEOUT = 5.0
#: how long before now the fleet starts, so that a silent worker's last beat is that old
HISTORY = 30


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def broker(server: fakeredis.FakeServer) -> Iterator[Broker]:
    with kombu_broker(server) as b:
        yield b


@pytest.fixture
def snapshot(table: FailureTable) -> Snapshot:
    return Snapshot(table, refresh_interval=0.5, heartbeat_timeout=TIMEOUT)


@pytest.fixture
def rescuer(snapshot: Snapshot, client: fakeredis.FakeRedis) -> Rescuer:
    choose = policy_chooser(RoundRobinPolicy(Settings()))
    return Rescuer(snapshot, StrandedMessages(client), choose, heartbeat_timeout=TIMEOUT)


def start_fleet(
    table: FailureTable, clock: FakeClock, workers: Sequence[str], silent: Sequence[str] = ()
) -> None:
    """Register ``workers`` HISTORY seconds ago; all but ``silent`` beat every second since.

    The table's clock ends at the wall clock, which the snapshot and the rescuer read.
    """
    clock.now = time.time() - HISTORY
    for worker in workers:
        assert table.register(worker, q(worker)).changed
    beat_while(table, clock, HISTORY, *[w for w in workers if w not in silent])


def depth(client: Any, worker: str) -> int:
    return StrandedMessages(client).depths([q(worker)])[q(worker)]


def broker_ids(client: Any, queue: str) -> list[str]:
    return [json.loads(raw)["headers"]["id"] for raw in client.lrange(queue, 0, -1)]


def unacked_queues(client: Any) -> Counter[str]:
    """How many unacknowledged messages kombu holds, per queue they came from."""
    return Counter(json.loads(raw)[2] for raw in client.hvals("unacked"))


def test_a_paused_workers_waiting_tasks_move_to_up_workers(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given three workers, w3 paused (alive) with 6 tasks waiting and 2 it is running
    start_fleet(table, clock, [W1, W2, W3])
    assert table.pause(W3, 60, Reason.CHAOS).changed
    broker.send(q(W3), 8)
    running = broker.take_unacked(q(W3), 2)
    waiting = broker_ids(client, q(W3))
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then the waiting tasks are split between w1 and w2 (round robin), each exactly once
    assert report.moved == Counter({(q(W3), q(W1)): 3, (q(W3), q(W2)): 3})
    assert depth(client, W3) == 0
    on_up = broker.consume_ids(q(W1)) + broker.consume_ids(q(W2))
    assert sorted(on_up) == sorted(waiting)
    # And the 2 it is running stay with it: a paused worker is alive
    assert report.restored == Counter() and report.reaped == []
    assert unacked_queues(client) == Counter({q(W3): 2})
    assert not set(running) & set(on_up)


def test_a_cleanly_stopped_worker_loses_its_waiting_tasks_but_keeps_its_unacked_ones(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given w3 marked down by its own shutdown long ago, silent since, with tasks
    # waiting and 2 unacked (kombu's clean stop restores those itself)
    clock.now = time.time() - HISTORY
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    assert table.mark_down(W3, Reason.SHUTDOWN).changed
    beat_while(table, clock, HISTORY, W1, W2)
    broker.send(q(W3), 5)
    broker.take_unacked(q(W3), 2)
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then the 3 waiting tasks moved to up workers and the unacked ones were left alone
    assert sum(report.moved.values()) == 3
    assert depth(client, W3) == 0
    assert depth(client, W1) + depth(client, W2) == 3
    assert report.restored == Counter()
    assert unacked_queues(client) == Counter({q(W3): 2})
    assert client.zcard("unacked_index") == 2


def test_a_silent_worker_is_reaped_and_its_unacked_tasks_restored(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given w3 silent for 30 s (timeout 5) while w1 and w2 beat, with 2 tasks waiting
    # and 2 it took before it went silent
    start_fleet(table, clock, [W1, W2, W3], silent=[W3])
    sent = broker.send(q(W3), 4)
    taken = broker.take_unacked(q(W3), 2)
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then w3 is marked down for want of a heartbeat
    assert [(e.worker, e.state, e.reason) for e in report.reaped] == [
        (W3, State.DOWN, Reason.HEARTBEAT)
    ]
    assert table.entries()[W3].state is State.DOWN
    # And its unacked tasks are restored now, redelivered, and its waiting ones moved
    assert sum(report.restored.values()) == 2
    assert sum(report.moved.values()) == 2
    assert client.hlen("unacked") == client.zcard("unacked_index") == 0
    received = broker.consume(q(W1)) + broker.consume(q(W2))
    assert sorted(m.headers["id"] for m in received) == sorted(sent)
    redelivered = {m.headers["id"] for m in received if m.delivery_info.get("redelivered")}
    assert redelivered == set(taken)


def test_a_worker_reaped_by_another_process_has_its_unacked_tasks_restored(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given w3 silent and already marked down by someone else's reap, with 3 unacked tasks
    start_fleet(table, clock, [W1, W2, W3], silent=[W3])
    assert [e.worker for e in table.reap(TIMEOUT)] == [W3]
    broker.send(q(W3), 3)
    taken = broker.take_unacked(q(W3), 3)
    snapshot.refresh()
    # When this rescuer runs a round
    report = rescuer.run_once()
    # Then it reaps nobody but restores the dead worker's tasks to w1 and w2
    assert report.reaped == []
    assert set(report.restored) == {q(W1), q(W2)}
    assert sorted(report.restored.values()) == [1, 2]
    assert sorted(broker.consume_ids(q(W1)) + broker.consume_ids(q(W2))) == sorted(taken)
    assert client.hlen("unacked") == 0


def test_with_no_worker_up_nothing_moves(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given w1 and w2 paused and w3 silent, w3 with tasks waiting and unacked, w1 with some
    start_fleet(table, clock, [W1, W2, W3], silent=[W3])
    assert table.pause(W1, 60, Reason.CHAOS).changed
    assert table.pause(W2, 60, Reason.MANUAL).changed
    broker.send(q(W3), 4)
    broker.take_unacked(q(W3), 1)
    broker.send(q(W1), 2)
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then w3 is marked down, but every message stays where it is
    assert [e.worker for e in report.reaped] == [W3]
    assert report.moved == Counter() and report.restored == Counter()
    assert (depth(client, W1), depth(client, W2), depth(client, W3)) == (2, 0, 3)
    assert unacked_queues(client) == Counter({q(W3): 1})


def stranded_fleet(table: FailureTable, clock: FakeClock, broker: Broker) -> None:
    """w3 paused with 3 waiting tasks; w4 dead (reaped) with 2 unacked; w1 and w2 up."""
    start_fleet(table, clock, [W1, W2, W3, W4], silent=[W4])
    assert table.pause(W3, 60, Reason.CHAOS).changed
    assert [e.worker for e in table.reap(TIMEOUT)] == [W4]
    broker.send(q(W3), 3)
    broker.send(q(W4), 2)
    broker.take_unacked(q(W4), 2)


def test_a_stale_snapshot_acts_on_nothing(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given stranded tasks, and a snapshot last read just over twice its interval plus 1 s ago
    stranded_fleet(table, clock, broker)
    snapshot.refresh()
    with monkeypatch.context() as patch:
        patch.setattr(Snapshot, "age", lambda self: 2 * self.refresh_interval + 1.1)
        # When the rescuer runs a round
        report = rescuer.run_once()
        # Then nothing moves: an old view may call live workers dead
        assert report.moved == Counter() and report.restored == Counter()
        assert (depth(client, W3), client.hlen("unacked")) == (3, 2)
    # And once the view is fresh again, the same round rescues everything
    report = rescuer.run_once()
    assert sum(report.moved.values()) == 3 and sum(report.restored.values()) == 2
    assert (depth(client, W3), client.hlen("unacked")) == (0, 0)


def test_a_held_rescue_lock_makes_it_skip_that_queue(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given w3 and w4 paused with 3 waiting tasks each, and another process moving w3's
    start_fleet(table, clock, [W1, W2, W3, W4])
    for worker in (W3, W4):
        assert table.pause(worker, 60, Reason.CHAOS).changed
        broker.send(q(worker), 3)
    other = client.lock(table.keys.rescue_lock(q(W3)), timeout=10)
    assert other.acquire(blocking=False)
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then it moves w4's tasks only, and leaves no lock of its own behind
    assert {source for source, _ in report.moved} == {q(W4)}
    assert (depth(client, W3), depth(client, W4)) == (3, 0)
    assert not client.exists(table.keys.rescue_lock(q(W4)))
    # And once the other process lets go, the next round moves w3's
    other.release()
    report = rescuer.run_once()
    assert {source for source, _ in report.moved} == {q(W3)}
    assert depth(client, W3) == 0
    assert not client.exists(table.keys.rescue_lock(q(W3)))


def test_up_workers_queues_are_left_alone(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given every worker up, with tasks waiting and unacked, and w3's pause already over
    start_fleet(table, clock, [W1, W2, W3])
    clock.now = time.time() - 10
    assert table.pause(W3, 1, Reason.CHAOS).changed
    clock.now = time.time()
    broker.send(q(W1), 2)
    broker.send(q(W3), 2)
    broker.take_unacked(q(W1), 1)
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then nothing moves
    assert report.moved == Counter() and report.restored == Counter() and report.reaped == []
    assert (depth(client, W1), depth(client, W3)) == (1, 2)
    assert client.hlen("unacked") == 1


def test_a_malformed_unacked_entry_does_not_stop_a_rescue(
    table: FailureTable,
    clock: FakeClock,
    snapshot: Snapshot,
    rescuer: Rescuer,
    broker: Broker,
    client: Any,
) -> None:
    # Given a dead w4 with unacked tasks, a paused w3 with waiting ones, and one entry in
    # kombu's unacked hash (shared by every app on this broker) that is not kombu's shape
    stranded_fleet(table, clock, broker)
    client.hset("unacked", "bad", json.dumps([{"properties": None}, "", [q(W4)]]))
    snapshot.refresh()
    # When the rescuer runs a round
    report = rescuer.run_once()
    # Then the good entries are restored and the waiting tasks moved; the bad one stays
    assert sum(report.restored.values()) == 2
    assert sum(report.moved.values()) == 3
    assert list(client.hkeys("unacked")) == ["bad"]


# -- policy_chooser -----------------------------------------------------------------------


class LastQueue(Policy):
    """Always the last queue; remembers what it was asked."""

    def __init__(self) -> None:
        super().__init__(Settings())
        self.calls: list[tuple[Any, ...]] = []

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        self.calls.append((tuple(queues), task_name, tuple(args), dict(kwargs), dict(options)))
        return queues[-1]


class NeedsTheTask(Policy):
    """A policy that cannot choose without the task's arguments (as ``hash`` cannot)."""

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        raise PolicyError("no hash key in a rescued message")


def test_policy_chooser_asks_the_policy() -> None:
    # Given a policy that picks the last queue
    policy = LastQueue()
    choose = policy_chooser(policy)
    # When a rescue target is chosen twice
    picks = [choose(["a", "b", "c"]), choose(["a", "b"])]
    # Then the policy chose, seeing the rescue task name and no arguments
    assert picks == ["c", "b"]
    assert policy.calls == [
        (("a", "b", "c"), RESCUE_TASK_NAME, (), {}, {}),
        (("a", "b"), RESCUE_TASK_NAME, (), {}, {}),
    ]


def test_policy_chooser_falls_back_to_round_robin() -> None:
    # Given a policy that raises for every rescued message
    choose = policy_chooser(NeedsTheTask(Settings()))
    # When targets are chosen
    picks = [choose(["a", "b", "c"]) for _ in range(6)]
    # Then they take turns
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_the_rescuer_routes_with_its_policy(
    table: FailureTable, clock: FakeClock, snapshot: Snapshot, broker: Broker, client: Any
) -> None:
    # Given a rescuer whose policy always picks the last up queue, and a paused w3
    start_fleet(table, clock, [W1, W2, W3])
    assert table.pause(W3, 60, Reason.CHAOS).changed
    broker.send(q(W3), 4)
    snapshot.refresh()
    policy = LastQueue()
    rescuer = Rescuer(snapshot, StrandedMessages(client), policy_chooser(policy), TIMEOUT)
    # When it runs a round
    report = rescuer.run_once()
    # Then all went to w2, the last up queue, and the policy saw only up queues
    assert report.moved == Counter({(q(W3), q(W2)): 4})
    assert {call[0] for call in policy.calls} == {(q(W1), q(W2))}
