"""Load-aware policies: ``least_loaded`` and ``p2c`` read sampled depths, never Redis per task."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest

from rfqueue.routing.depth import DepthSampler
from rfqueue.routing.policies import create_policy
from rfqueue.routing.policies.least_loaded import LeastLoadedPolicy
from rfqueue.routing.policies.p2c import PowerOfTwoPolicy
from rfqueue.routing.routed import RoutedCounts
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.snapshot import Snapshot

QA, QB, QC, QD = (f"rfqueue.{n}@h" for n in "abcd")
QUEUES = (QA, QB, QC, QD)


class StubSampler:
    """Depths set by hand; ``generation`` moves when they do, as a real read would."""

    def __init__(self, depths: dict[str, int]) -> None:
        self.depths = depths
        self.generation = 1

    def set(self, depths: dict[str, int]) -> None:
        self.depths = depths
        self.generation += 1


def route(policy: Any, routed: RoutedCounts, queues: tuple[str, ...] = QUEUES) -> str:
    """What the router does per task: choose, then count."""
    queue: str = policy.choose(queues, "tasks.add", (1, 2), {}, {})
    routed.add(queue)
    return queue


def least_loaded(depths: dict[str, int] | None) -> tuple[LeastLoadedPolicy, RoutedCounts]:
    """A started-looking least_loaded policy over hand-set depths (None: not started)."""
    policy = LeastLoadedPolicy(Settings(policy="least_loaded"))
    routed = RoutedCounts()
    if depths is not None:
        policy.estimate.sampler = StubSampler(depths)  # type: ignore[assignment]
    return policy, routed


class TestLeastLoaded:
    def test_shortest_queue_wins(self) -> None:
        policy, routed = least_loaded({QA: 5, QB: 1, QC: 3, QD: 9})
        assert [route(policy, routed) for _ in range(2)] == [QB, QB]
        # B's estimate is now 3, level with C: they take turns
        assert {route(policy, routed) for _ in range(4)} == {QB, QC}

    def test_own_routes_keep_queues_level_between_samples(self) -> None:
        # Given depths 2, 0, 0, 7 and no new sample for 100 tasks
        policy, routed = least_loaded({QA: 2, QB: 0, QC: 0, QD: 7})
        for _ in range(100):
            route(policy, routed)
        # Then the estimates end level (109 in all, over four queues)
        loads = [policy.estimate.load(q) for q in QUEUES]
        assert max(loads) - min(loads) <= 1, loads
        assert sum(loads) == 109

    def test_ties_take_turns(self) -> None:
        policy, routed = least_loaded(dict.fromkeys(QUEUES, 4))
        picks = [route(policy, routed) for _ in range(8)]
        assert Counter(picks) == dict.fromkeys(QUEUES, 2)

    def test_unsampled_queue_counts_as_empty(self) -> None:
        # A worker that registered after the last read has an empty queue
        policy, routed = least_loaded({QA: 1, QB: 1, QC: 1})
        assert route(policy, routed) == QD

    def test_only_given_queues(self) -> None:
        # The paused worker's empty queue is not among the choices
        policy, routed = least_loaded({QA: 0, QB: 4, QC: 3, QD: 3})
        assert {route(policy, routed, (QB, QC, QD)) for _ in range(2)} == {QC, QD}

    def test_a_new_sample_replaces_the_estimate(self) -> None:
        policy, routed = least_loaded({QA: 0, QB: 0})
        for _ in range(10):
            route(policy, routed, (QA, QB))
        sampler = policy.estimate.sampler
        assert isinstance(sampler, StubSampler)
        sampler.set({QA: 9, QB: 1})  # A's workers were slow, B drained
        assert route(policy, routed, (QA, QB)) == QB

    def test_before_start_it_takes_turns(self) -> None:
        policy, routed = least_loaded(None)
        assert Counter(route(policy, routed) for _ in range(40)) == dict.fromkeys(QUEUES, 10)


class TestPowerOfTwo:
    def policy(self, depths: dict[str, int], seed: int = 1) -> tuple[PowerOfTwoPolicy, Any]:
        policy = PowerOfTwoPolicy(Settings(policy="p2c", seed=seed))
        sampler = StubSampler(depths)
        policy.estimate.sampler = sampler  # type: ignore[assignment]
        return policy, sampler

    def test_never_picks_the_longest_of_two(self) -> None:
        # Given two queues, one far longer
        policy, _ = self.policy({QA: 100, QB: 0})
        routed = RoutedCounts()
        # Then the short one gets tasks until the estimates meet
        picks = [route(policy, routed, (QA, QB)) for _ in range(100)]
        assert picks == [QB] * 100

    def test_counts_own_routes_since_the_sample(self) -> None:
        # Given equal sampled depths and no new sample for 10,000 tasks
        policy, _ = self.policy(dict.fromkeys(QUEUES, 0))
        routed = RoutedCounts()
        # When 10,000 tasks are routed
        counts = Counter(route(policy, routed) for _ in range(10_000))
        # Then its own routes keep the queues level (max/mean at most 1.05)
        assert max(counts.values()) / (10_000 / 4) <= 1.05, counts

    def test_a_new_sample_replaces_the_estimate(self) -> None:
        # Given 40 tasks routed over two queues since the last sample
        policy, sampler = self.policy({QA: 0, QB: 0})
        routed = RoutedCounts()
        for _ in range(40):
            route(policy, routed, (QA, QB))
        assert policy.estimate.load(QA) + policy.estimate.load(QB) == 40
        # When a new sample says A drained and B holds 30
        sampler.set({QA: 0, QB: 30})
        # Then the estimate starts again from the sample
        assert (policy.estimate.load(QA), policy.estimate.load(QB)) == (0, 30)
        assert route(policy, routed, (QA, QB)) == QA
        assert policy.estimate.load(QA) == 1

    def test_one_queue(self) -> None:
        policy, _ = self.policy({QA: 3})
        assert policy.choose((QA,), "t", (), {}, {}) == QA

    def test_both_draws_are_distinct_and_all_queues_are_drawn(self) -> None:
        # With equal loads the first draw wins: every queue gets drawn over many tasks
        policy, _ = self.policy(dict.fromkeys(QUEUES, 5), seed=7)
        picks = Counter(policy.choose(QUEUES, "t", (), {}, {}) for _ in range(4000))
        assert set(picks) == set(QUEUES)
        assert all(800 <= n <= 1200 for n in picks.values()), picks

    def test_same_seed_same_choices(self) -> None:
        a, _ = self.policy(dict.fromkeys(QUEUES, 0), seed=3)
        b, _ = self.policy(dict.fromkeys(QUEUES, 0), seed=3)
        assert [a.choose(QUEUES, "t", (), {}, {}) for _ in range(50)] == [
            b.choose(QUEUES, "t", (), {}, {}) for _ in range(50)
        ]


@pytest.mark.parametrize("name", ["least_loaded", "p2c"])
def test_start_samples_every_registered_queue_on_the_table_redis(
    name: str,
    table: FailureTable,
    client: fakeredis.FakeRedis,
    poll: Callable[..., bool],
    stop: Callable[[Snapshot], None],
) -> None:
    # Given two registered workers, B's queue holding 3 messages
    table.register("a@h", QA)
    table.register("b@h", QB)
    client.lpush(QB, "m1", "m2", "m3")
    snapshot = Snapshot(table, refresh_interval=60)
    snapshot.ensure_started()
    policy = create_policy(Settings(policy=name, depth_interval=0.02))
    # When the policy starts in this process
    policy.start(snapshot, RoutedCounts())
    sampler = policy.sampler  # type: ignore[attr-defined]
    try:
        # Then its sampler read both queues through the table's client, and keeps reading
        assert isinstance(sampler, DepthSampler)
        assert sampler.depths == {QA: 0, QB: 3}
        client.lpush(QA, *range(5))
        assert poll(lambda: sampler.depths.get(QA) == 5)
        assert policy.choose((QA, QB), "t", (), {}, {}) == QB
    finally:
        sampler.stop()
        stop(snapshot)


@pytest.mark.parametrize("name", ["least_loaded", "p2c"])
def test_a_task_reads_a_few_estimates_whatever_the_fleet(name: str) -> None:
    # Given 10,000 up queues of random depths, sampled once
    queues = tuple(f"rfqueue.w{i}@h" for i in range(10_000))
    policy: Any = create_policy(Settings(policy=name, seed=1))
    policy.estimate.sampler = StubSampler({q: (i * 7919) % 13 for i, q in enumerate(queues)})
    policy.choose(queues, "t", (), {}, {})  # least_loaded builds its heap: once per sample
    reads = 0
    real = policy.estimate.load

    def counted(queue: str) -> int:
        nonlocal reads
        reads += 1
        return int(real(queue))

    policy.estimate.load = counted
    # When 1,000 tasks are routed
    picks = Counter(policy.choose(queues, "t", (), {}, {}) for _ in range(1000))
    # Then each read a few estimates (a scan would read 10,000), and least_loaded filled
    # the 770 empty queues, then went on to those of depth 1
    assert reads <= 3 * 1000, reads
    if name == "least_loaded":
        assert {policy.estimate.sampler.depths[q] for q in picks} == {0, 1}
