"""The rescuer: one round over a real failure table, snapshot and kombu broker on fakeredis.

No thread runs here: each test refreshes the snapshot by hand and calls ``run_once``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from rfqueue.brokers.redis import RedisBroker
from rfqueue.routing.policies import Policy, PolicyError, create_policy
from rfqueue.routing.routed import RoutedCounts
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason, State
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import RESCUE_TASK_NAME, policy_chooser
from rfqueue.worker.rescue import Rescuer
from tests.unit.conftest import FakeClock, beat_while
from tests.unit.kombu_fakes import Broker, kombu_messages, push

W1, W2, W3, W4 = "w1@h", "w2@h", "w3@h", "w4@h"
TIMEOUT = 5.0
#: how long before now the fleet starts, so that a silent worker's last beat is that old
HISTORY = 30


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@dataclass
class World:
    """A failure table on a clock moved by hand, a snapshot of it, a rescuer and kombu's broker.

    All of them share one fakeredis server, which ``client`` reads.
    """

    table: FailureTable
    clock: FakeClock
    snapshot: Snapshot
    rescuer: Rescuer
    broker: Broker
    client: Any

    def start_fleet(self, workers: Sequence[str], silent: Sequence[str] = ()) -> None:
        """Register ``workers`` HISTORY seconds ago; all but ``silent`` beat every second since.

        The table's clock ends at the wall clock, which the snapshot and the rescuer read.
        """
        self.clock.now = time.time() - HISTORY
        for worker in workers:
            assert self.table.register(worker, q(worker)).changed
        beat_while(self.table, self.clock, HISTORY, *[w for w in workers if w not in silent])

    def pause(self, worker: str, reason: Reason = Reason.CHAOS) -> None:
        """Pause ``worker`` for a minute, far longer than a test runs."""
        assert self.table.pause(worker, 60, reason).changed

    def reap(self) -> list[str]:
        """Another process reaps the silent workers; the ones it marked down."""
        return [e.worker for e in self.table.reap(TIMEOUT)]

    def depth(self, worker: str) -> int:
        return RedisBroker(self.client).depths([q(worker)])[q(worker)]

    def broker_ids(self, queue: str) -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in self.client.lrange(queue, 0, -1)]

    def unacked_queues(self) -> Counter[str]:
        """How many unacknowledged messages kombu holds, per queue they came from."""
        return Counter(json.loads(raw)[2] for raw in self.client.hvals("unacked"))


def stranded_fleet(world: World) -> None:
    """w3 paused with 3 waiting tasks; w4 dead (reaped) with 2 unacked; w1 and w2 up."""
    world.start_fleet([W1, W2, W3, W4], silent=[W4])
    world.pause(W3)
    assert world.reap() == [W4]
    world.broker.send(q(W3), 3)
    world.broker.send(q(W4), 2)
    world.broker.take_unacked(q(W4), 2)


def test_a_paused_workers_waiting_tasks_move_to_up_workers(world: World) -> None:
    # Given three workers, w3 paused (alive) with 6 tasks waiting and 2 it is running
    world.start_fleet([W1, W2, W3])
    world.pause(W3)
    world.broker.send(q(W3), 8)
    running = world.broker.take_unacked(q(W3), 2)
    waiting = world.broker_ids(q(W3))
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then the waiting tasks are split between w1 and w2 (round robin), each exactly once
    assert report.moved == Counter({(q(W3), q(W1)): 3, (q(W3), q(W2)): 3})
    assert world.depth(W3) == 0
    on_up = world.broker.consume_ids(q(W1)) + world.broker.consume_ids(q(W2))
    assert sorted(on_up) == sorted(waiting)
    # And the 2 it is running stay with it: a paused worker is alive
    assert report.restored == Counter() and report.reaped == []
    assert world.unacked_queues() == Counter({q(W3): 2})
    assert not set(running) & set(on_up)


def test_a_cleanly_stopped_worker_loses_its_waiting_tasks_but_keeps_its_unacked_ones(
    world: World,
) -> None:
    # Given w3 marked down by its own shutdown long ago, silent since, with tasks
    # waiting and 2 unacked (kombu's clean stop restores those itself)
    world.clock.now = time.time() - HISTORY
    for worker in (W1, W2, W3):
        world.table.register(worker, q(worker))
    assert world.table.mark_down(W3, Reason.SHUTDOWN).changed
    beat_while(world.table, world.clock, HISTORY, W1, W2)
    world.broker.send(q(W3), 5)
    world.broker.take_unacked(q(W3), 2)
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then the 3 waiting tasks moved to up workers and the unacked ones were left alone
    assert sum(report.moved.values()) == 3
    assert world.depth(W3) == 0
    assert world.depth(W1) + world.depth(W2) == 3
    assert report.restored == Counter()
    assert world.unacked_queues() == Counter({q(W3): 2})
    assert world.client.zcard("unacked_index") == 2


def test_a_silent_worker_is_reaped_and_its_unacked_tasks_restored(world: World) -> None:
    # Given w3 silent for 30 s (timeout 5) while w1 and w2 beat, with 2 tasks waiting
    # and 2 it took before it went silent
    world.start_fleet([W1, W2, W3], silent=[W3])
    sent = world.broker.send(q(W3), 4)
    taken = world.broker.take_unacked(q(W3), 2)
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then w3 is marked down for want of a heartbeat
    assert [(e.worker, e.state, e.reason) for e in report.reaped] == [
        (W3, State.DOWN, Reason.HEARTBEAT)
    ]
    assert world.table.entries()[W3].state is State.DOWN
    # And its unacked tasks are restored now, redelivered, and its waiting ones moved
    assert sum(report.restored.values()) == 2
    assert sum(report.moved.values()) == 2
    assert world.client.hlen("unacked") == world.client.zcard("unacked_index") == 0
    received = world.broker.consume(q(W1)) + world.broker.consume(q(W2))
    assert sorted(m.headers["id"] for m in received) == sorted(sent)
    redelivered = {m.headers["id"] for m in received if m.delivery_info.get("redelivered")}
    assert redelivered == set(taken)


def test_a_worker_reaped_by_another_process_has_its_unacked_tasks_restored(world: World) -> None:
    # Given w3 silent and already marked down by someone else's reap, with 3 unacked tasks
    world.start_fleet([W1, W2, W3], silent=[W3])
    assert world.reap() == [W3]
    world.broker.send(q(W3), 3)
    taken = world.broker.take_unacked(q(W3), 3)
    world.snapshot.refresh()
    # When this rescuer runs a round
    report = world.rescuer.run_once()
    # Then it reaps nobody but restores the dead worker's tasks to w1 and w2
    assert report.reaped == []
    assert set(report.restored) == {q(W1), q(W2)}
    assert sorted(report.restored.values()) == [1, 2]
    on_up = world.broker.consume_ids(q(W1)) + world.broker.consume_ids(q(W2))
    assert sorted(on_up) == sorted(taken)
    assert world.client.hlen("unacked") == 0


def test_with_no_worker_up_nothing_moves(world: World) -> None:
    # Given w1 and w2 paused and w3 silent, w3 with tasks waiting and unacked, w1 with some
    world.start_fleet([W1, W2, W3], silent=[W3])
    world.pause(W1, Reason.CHAOS)
    world.pause(W2, Reason.MANUAL)
    world.broker.send(q(W3), 4)
    world.broker.take_unacked(q(W3), 1)
    world.broker.send(q(W1), 2)
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then w3 is marked down, but every message stays where it is
    assert [e.worker for e in report.reaped] == [W3]
    assert report.moved == Counter() and report.restored == Counter()
    assert (world.depth(W1), world.depth(W2), world.depth(W3)) == (2, 0, 3)
    assert world.unacked_queues() == Counter({q(W3): 1})


def test_a_stale_snapshot_acts_on_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given stranded tasks, and a snapshot last read just over twice its interval plus 1 s ago
    stranded_fleet(world)
    world.snapshot.refresh()
    with monkeypatch.context() as patch:
        patch.setattr(Snapshot, "age", lambda self: 2 * self.refresh_interval + 1.1)
        # When the rescuer runs a round
        report = world.rescuer.run_once()
        # Then nothing moves: an old view may call live workers dead
        assert report.moved == Counter() and report.restored == Counter()
        assert (world.depth(W3), world.client.hlen("unacked")) == (3, 2)
    # And once the view is fresh again, the same round rescues everything
    report = world.rescuer.run_once()
    assert sum(report.moved.values()) == 3 and sum(report.restored.values()) == 2
    assert (world.depth(W3), world.client.hlen("unacked")) == (0, 0)


def test_a_held_rescue_lock_makes_it_skip_that_queue(world: World) -> None:
    # Given w3 and w4 paused with 3 waiting tasks each, and another process moving w3's
    world.start_fleet([W1, W2, W3, W4])
    for worker in (W3, W4):
        world.pause(worker)
        world.broker.send(q(worker), 3)
    lock_of = world.table.keys.rescue_lock
    other = world.client.lock(lock_of(q(W3)), timeout=10)
    assert other.acquire(blocking=False)
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then it moves w4's tasks only, and leaves no lock of its own behind
    assert {source for source, _ in report.moved} == {q(W4)}
    assert (world.depth(W3), world.depth(W4)) == (3, 0)
    assert not world.client.exists(lock_of(q(W4)))
    # And once the other process lets go, the next round moves w3's
    other.release()
    report = world.rescuer.run_once()
    assert {source for source, _ in report.moved} == {q(W3)}
    assert world.depth(W3) == 0
    assert not world.client.exists(lock_of(q(W3)))


def test_up_workers_queues_are_left_alone(world: World) -> None:
    # Given every worker up, with tasks waiting and unacked, and w3's pause already over
    world.start_fleet([W1, W2, W3])
    world.clock.now = time.time() - 10
    assert world.table.pause(W3, 1, Reason.CHAOS).changed
    world.clock.now = time.time()
    world.broker.send(q(W1), 2)
    world.broker.send(q(W3), 2)
    world.broker.take_unacked(q(W1), 1)
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then nothing moves
    assert report.moved == Counter() and report.restored == Counter() and report.reaped == []
    assert (world.depth(W1), world.depth(W3)) == (1, 2)
    assert world.client.hlen("unacked") == 1


def test_a_malformed_unacked_entry_does_not_stop_a_rescue(world: World) -> None:
    # Given a dead w4 with unacked tasks, a paused w3 with waiting ones, and one entry in
    # kombu's unacked hash (shared by every app on this broker) that is not kombu's shape
    stranded_fleet(world)
    world.client.hset("unacked", "bad", json.dumps([{"properties": None}, "", [q(W4)]]))
    world.snapshot.refresh()
    # When the rescuer runs a round
    report = world.rescuer.run_once()
    # Then the good entries are restored and the waiting tasks moved; the bad one stays
    assert sum(report.restored.values()) == 2
    assert sum(report.moved.values()) == 3
    assert list(world.client.hkeys("unacked")) == ["bad"]


# -- policy_chooser -----------------------------------------------------------------------


class RecordingPolicy(Policy):
    """A policy that remembers what it was asked and answers with ``pick``."""

    def __init__(self, pick: Callable[[Sequence[str]], str]) -> None:
        super().__init__(Settings())
        self.pick = pick
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
        return self.pick(queues)


def last_queue(queues: Sequence[str]) -> str:
    return queues[-1]


def needs_the_task(queues: Sequence[str]) -> str:
    """As ``hash`` does, it cannot choose without the task's arguments."""
    raise PolicyError("no hash key in a rescued message")


def test_policy_chooser_asks_the_policy() -> None:
    # Given a policy that picks the last queue
    policy = RecordingPolicy(last_queue)
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
    choose = policy_chooser(RecordingPolicy(needs_the_task))
    # When targets are chosen
    picks = [choose(["a", "b", "c"]) for _ in range(6)]
    # Then they take turns
    assert picks == ["a", "b", "c", "a", "b", "c"]


def test_the_rescuer_routes_with_its_policy(world: World) -> None:
    # Given a rescuer whose policy always picks the last up queue, and a paused w3
    world.start_fleet([W1, W2, W3])
    world.pause(W3)
    world.broker.send(q(W3), 4)
    world.snapshot.refresh()
    policy = RecordingPolicy(last_queue)
    broker = RedisBroker(world.client)
    rescuer = Rescuer(world.snapshot, broker, policy_chooser(policy), TIMEOUT)
    # When it runs a round
    report = rescuer.run_once()
    # Then all went to w2, the last up queue, and the policy saw only up queues
    assert report.moved == Counter({(q(W3), q(W2)): 4})
    assert {call[0] for call in policy.calls} == {(q(W1), q(W2))}


def test_a_rescue_keeps_each_task_in_its_pool_with_workers_that_have_it(world: World) -> None:
    from rfqueue.table.service import Service
    from tests.unit.brokers.test_stranded_pools import keyed
    from tests.unit.kombu_fakes import push

    # Given v1 and v2 of the video pool (v2 lacks app.rare), p1 of celery; v1 paused
    v1, v2, p1 = "v1@h", "v2@h", "p1@h"
    world.clock.now = time.time()
    world.table.register(v1, q(v1), Service.of(["video"], ["app.v", "app.rare"]))
    world.table.register(v2, q(v2), Service.of(["video"], ["app.v"]))
    world.table.register(p1, q(p1), Service.of(["celery"], ["app.v", "app.rare"]))
    world.pause(v1)
    # And waiting in v1's queue: video tasks, one only v1 has, one of the default pool
    video = keyed(q(v1), "app.v", "video", 3)
    rare = keyed(q(v1), "app.rare", "video")
    default = keyed(q(v1), "app.v", "")
    push(world.client, q(v1), [*video, *rare, *default])
    world.snapshot.refresh()
    # When the rescuer runs
    report = world.rescuer.run_once()
    # Then the video tasks went to v2, the one without the pool header to p1 (its pool is
    # the default queue), and the one no up video worker has waits for v1
    assert report.moved == Counter({(q(v1), q(v2)): 3, (q(v1), q(p1)): 1})
    assert world.broker_ids(q(v1)) == [json.loads(rare[0])["headers"]["id"]]
    # And once a round moved none of it, later rounds leave it alone without reading it
    # again, until the pools or the queue change
    assert world.rescuer.run_once().moved == Counter()

    def never(*args: Any) -> Counter[str]:
        raise AssertionError("a queue that could not move was read again")

    world.rescuer.broker.move = never  # type: ignore[method-assign]
    assert world.rescuer.run_once().moved == Counter()


@pytest.mark.parametrize("name", ["least_loaded", "p2c"])
def test_a_rescued_backlog_is_spread_by_the_policy_counting_its_own_moves(
    world: World, name: str
) -> None:
    # Given w4 paused with 900 waiting tasks, and w2, w3 one task longer than w1 at the
    # policy's one depth read (no other read during the round; the bench's "rescue
    # spread" rows move 3,000 on a real Redis)
    world.start_fleet([W1, W2, W3, W4])
    world.pause(W4)
    push(world.client, q(W4), kombu_messages(q(W4), 900))
    for worker in (W2, W3):
        world.broker.send(q(worker), 1)
    world.snapshot.refresh()
    policy = create_policy(Settings(policy=name, depth_interval=3600, seed=1))
    broker = RedisBroker(world.client)
    policy.start(world.snapshot, RoutedCounts(), broker.depths)
    try:
        # When the rescuer moves them with that policy
        rescuer = Rescuer(world.snapshot, broker, policy_chooser(policy), TIMEOUT)
        moved = Counter({target: n for (_, target), n in rescuer.run_once().moved.items()})
    finally:
        policy.sampler.stop()  # type: ignore[attr-defined]
    # Then they are spread over the three up workers (not 900/0/0 onto the shortest)
    assert sum(moved.values()) == 900
    assert max(moved.values()) / 300 <= 1.05, moved
