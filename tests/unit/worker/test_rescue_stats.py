"""What the rescuers record for the exporter: counts per queue and one latency per episode."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from rfqueue.brokers.redis import RedisBroker
from rfqueue.keys import Keys
from rfqueue.routing.policies.round_robin import RoundRobinPolicy
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import policy_chooser
from rfqueue.worker.rescue import Rescuer
from rfqueue.worker.rescue_stats import RescueStats
from tests.unit.conftest import NAMESPACE, FakeClock

W1, W2, W3 = "w1@h", "w2@h", "w3@h"
KEYS = Keys(NAMESPACE)


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


def rescuer(table: FailureTable, client: Any, started: float = 0.0) -> Rescuer:
    """A rescuer with its own snapshot and statistics, as in another worker process."""
    snapshot = Snapshot(table, refresh_interval=0.5, heartbeat_timeout=3600)
    stats = RescueStats(client, KEYS, started=started)
    choose = policy_chooser(RoundRobinPolicy(Settings()))
    return Rescuer(snapshot, RedisBroker(client), choose, heartbeat_timeout=3600, stats=stats)


def round_of(r: Rescuer) -> Any:
    r.snapshot.refresh()
    return r.run_once()


def latency(client: Any) -> dict[str, str]:
    return client.hgetall(KEYS.rescue_latency)  # type: ignore[no-any-return]


@pytest.fixture
def fleet(table: FailureTable, clock: FakeClock) -> FailureTable:
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    return table


def test_a_round_that_moves_tasks_counts_them_by_source_and_target(fleet, client, clock):
    # Given w3 paused 7 s ago with 4 tasks waiting
    clock.now = time.time() - 7
    fleet.pause(W3, 60, Reason.CHAOS)
    clock.now = time.time()  # the server's clock, 7 s on
    client.lpush(q(W3), *[f'{{"n": {i}}}' for i in range(4)])

    # When a rescuer runs a round
    report = round_of(rescuer(fleet, client))

    # Then the moves are counted: out of w3's queue, into w1's and w2's
    assert report.moved == Counter({(q(W3), q(W1)): 2, (q(W3), q(W2)): 2})
    assert client.hgetall(KEYS.rescued) == {
        f"from:{q(W3)}": "4",
        f"to:{q(W1)}": "2",
        f"to:{q(W2)}": "2",
    }
    # And the episode's latency (about 7 s) is one observation in the 10 s bucket
    seen = latency(client)
    assert seen["10"] == "1" and seen["count"] == "1"
    assert 7 <= float(seen["sum"]) < 9
    assert set(seen) == {"10", "count", "sum"}


def test_each_episode_is_observed_once_however_many_rescuers_see_it(fleet, client, clock):
    # Given w3 paused with an empty queue, and three rescuers (three worker processes)
    fleet.pause(W3, 60, Reason.MANUAL)
    rescuers = [rescuer(fleet, client) for _ in range(3)]

    # When each runs two rounds
    for r in rescuers * 2:
        assert [e.worker for e in round_of(r).cleared] == [W3]

    # Then one observation, and no moves counted
    assert latency(client)["count"] == "1"
    assert client.hgetall(KEYS.rescued) == {}

    # When w3 is resumed and paused again: a new episode, observed once more
    fleet.resume(W3, Reason.MANUAL)
    fleet.pause(W3, 60, Reason.CHAOS)
    for r in rescuers:
        round_of(r)
    assert latency(client)["count"] == "2"


def test_an_episode_that_began_before_the_rescuer_started_is_not_timed(fleet, client, clock):
    # Given w3 went down long before this rescuer started (an old table, a new fleet)
    fleet.mark_down(W3, Reason.SHUTDOWN)
    late = rescuer(fleet, client, started=clock.now + 1)

    # When it finds w3's queue empty, then it records nothing: that start is not its to time
    assert [e.worker for e in round_of(late).cleared] == [W3]
    assert latency(client) == {}


def test_nothing_is_observed_while_no_worker_is_up(fleet, client, clock):
    # Given every worker paused, w3 with tasks waiting
    for worker in (W1, W2, W3):
        fleet.pause(worker, 60, Reason.MANUAL)
    client.lpush(q(W3), "{}")
    r = rescuer(fleet, client)

    # When a round runs, then nothing moved and no episode is over: its latency keeps growing
    assert round_of(r).cleared == []
    assert latency(client) == {}

    # When w1 comes back, then w3's tasks move to it and every episode is observed
    fleet.resume(W1, Reason.MANUAL)
    report = round_of(r)
    assert report.moved == Counter({(q(W3), q(W1)): 1})
    assert sorted(e.worker for e in report.cleared) == [W2, W3]
    assert latency(client)["count"] == "2"


def test_a_redis_failure_is_a_warning_not_an_error(server, client, caplog):
    # Given statistics kept in a Redis that goes away
    stats = RescueStats(client, KEYS)
    server.connected = False

    # When a round's counts are recorded, then it returns, with one warning
    stats.record_counts(Counter({("a", "b"): 1}), Counter())
    assert "cannot record rescue statistics" in caplog.text
