"""The broker model's routers and what they know: each decides as its design says."""

from __future__ import annotations

import math

import pytest

from rfqueue.simulate.candidates import (
    SHARED,
    JoinIdleQueue,
    LeastLoaded,
    RoundRobin,
    ShortestExpectedDelay,
    Spill,
)
from rfqueue.simulate.completions import EWMA_DECAY, LeastOutstanding, PeakEwma
from rfqueue.simulate.designs import CANDIDATES
from rfqueue.simulate.knowledge import DepthEstimate, Fleet, IdleList, LowestKey
from rfqueue.simulate.params import BROKER_POLICIES, SimulationParams


def fleet(n: int) -> Fleet:
    return Fleet(list(range(n)), bytearray([1]) * n)


def pause(f: Fleet, worker: int) -> None:
    f.is_up[worker] = 0
    f.up.remove(worker)


def params(n: int, **values: object) -> SimulationParams:
    return SimulationParams(workers=n, model="broker", policies=("shared",), **values)  # type: ignore[arg-type]


def test_every_design_has_a_router() -> None:
    assert set(CANDIDATES) == set(BROKER_POLICIES)


def test_the_idle_list_gives_the_latest_announcement_first_and_forgets_busy_ones() -> None:
    f, idle = fleet(5), IdleList(5, bound=1)
    for worker in (0, 1, 2):
        idle.idle(worker)
    # Then the latest comes first; a busy one, a paused one and a taken one leave the list
    assert idle.first(f.is_up) == 2
    idle.busy(2)
    assert idle.first(f.is_up) == 1
    pause(f, 1)
    assert idle.first(f.is_up) == 0
    idle.take(0)
    assert idle.first(f.is_up) == -1


def test_the_idle_list_keeps_a_worker_until_the_bound_and_re_lists_it_when_announced() -> None:
    f, idle = fleet(3), IdleList(3, bound=2)
    idle.idle(1)
    idle.take(1)
    assert idle.first(f.is_up) == 1  # one send believed outstanding, fewer than 2
    idle.take(1)
    assert idle.first(f.is_up) == -1
    idle.idle(1)  # idle again: it starts from zero sends
    assert idle.first(f.is_up) == 1 and idle.sent[1] == 0


def test_the_idle_list_compacts_its_stale_entries() -> None:
    idle = IdleList(4, bound=1)
    for _ in range(1000):
        for worker in range(4):
            idle.idle(worker)
    # Then it holds at most about twice the fleet, and each worker's latest entry survives
    assert len(idle.stack) <= 2 * 4 + 64 + 1
    assert {w for w, m in idle.stack if idle.mark[w] == m} == {0, 1, 2, 3}


def test_lowest_key_takes_turns_among_equals_and_skips_paused_workers() -> None:
    f = fleet(4)
    load = [0, 0, 0, 0]
    lowest = LowestKey(load.__getitem__, f)
    lowest.rebuild(f.up)
    chosen = []
    for _ in range(8):
        w = lowest.lowest()
        chosen.append(w)
        load[w] += 1
        lowest.update(w)
    # Then equal keys take turns
    assert chosen == [0, 1, 2, 3, 0, 1, 2, 3]
    # and a paused worker is never the lowest, whatever its key
    load[3] = -5
    lowest.update(3)
    pause(f, 3)
    assert lowest.lowest() != 3


def test_the_depth_estimate_is_the_sample_plus_own_sends_since() -> None:
    estimate = DepthEstimate(3)
    estimate.resample([4, 0, 2])
    estimate.sent(1)
    estimate.sent(1)
    assert [estimate(w) for w in range(3)] == [4, 2, 2]
    estimate.resample([1, 1, 1])  # a new sample forgets the sends it now includes
    assert [estimate(w) for w in range(3)] == [1, 1, 1]


def test_routers_start_round_robin_at_spread_turns() -> None:
    f, p = fleet(8), params(8, routers=4)
    firsts = [RoundRobin(f, p, r, 0).choose(0, 0.0) for r in range(4)]
    assert firsts == [0, 2, 4, 6]


def test_least_loaded_sends_to_the_lowest_estimate_until_it_is_not_lowest() -> None:
    f = fleet(3)
    router = LeastLoaded(f, params(3), 0, 1)
    router.sampled([3, 0, 1], 0.0)
    # Then 1 (estimate 0), then 2 and 1 take turns at equal estimates; 0 waits its turn
    assert [router.choose(t, 0.0) for t in range(5)] == [1, 2, 1, 2, 1]
    assert router.choose(5, 0.0) in (0, 2)


def test_shortest_expected_delay_weighs_depth_by_the_published_service_time() -> None:
    f = fleet(2)
    router = ShortestExpectedDelay(f, params(2), 0, 1)
    router.sampled([0, 0], 0.0)
    router.published(0, 0.005)  # fast
    router.published(1, 0.025)  # five times slower
    # Then the fast one takes tasks until (depth + 1) x 5 ms reaches 25 ms, then they share
    assert [router.choose(t, 0.0) for t in range(6)] == [0, 0, 0, 0, 1, 0]


def test_jiq_sends_to_a_known_idle_worker_else_to_the_better_of_two() -> None:
    f = fleet(4)
    router = JoinIdleQueue(f, params(4), 0, 1)
    router.sampled([5, 5, 0, 5], 0.0)
    router.announced(3, True)
    # Then the idle worker first, once; then p2c on the estimate, which never picks 3 now
    # over 2 (3's estimate grew by the send)
    assert router.choose(0, 0.0) == 3
    picks = {router.choose(t, 0.0) for t in range(1, 40)}
    assert 2 in picks


@pytest.mark.parametrize("bound", [0, 1, 2])
def test_spill_sends_an_idle_worker_fewer_than_b_tasks_and_the_rest_to_the_shared_queue(
    bound: int,
) -> None:
    f = fleet(3)
    router = Spill(f, params(3, spill_bound=bound), 0, 1)
    assert bool(router.uses) == (bound > 0)  # B = 0 needs no announcements
    router.announced(1, True)
    choices = [router.choose(t, 0.0) for t in range(4)]
    assert choices == [1] * bound + [SHARED] * (4 - bound)


def test_spill_forgets_a_worker_that_says_it_is_busy() -> None:
    f = fleet(3)
    router = Spill(f, params(3, spill_bound=1), 0, 1)
    router.announced(0, True)
    router.announced(0, False)
    assert router.choose(0, 0.0) == SHARED


def test_least_outstanding_counts_its_sends_and_the_completions_it_hears_of() -> None:
    f = fleet(2)
    router = LeastOutstanding(f, params(2), 0, 1)
    assert [router.choose(t, 0.0) for t in range(4)] == [0, 1, 0, 1]
    router.completed(1, 0.01, 1.0)
    router.completed(1, 0.01, 1.0)
    assert router.choose(4, 1.0) == 1 and router.outstanding == [2, 1]


def test_peak_ewma_jumps_to_a_slow_latency_and_decays_from_it() -> None:
    f = fleet(2)
    router = PeakEwma(f, params(2, service_mean=0.01), 0, 1)
    router.observe(0, 0.5, now=1.0)
    assert router.latency[0] == 0.5  # a peak replaces the average at once
    router.observe(0, 0.0, now=1.0 + EWMA_DECAY)
    assert router.latency[0] == pytest.approx(0.5 * math.exp(-1))
    # and with worker 0 slow, every pair picks worker 1
    assert {router.choose(t, 1.0 + EWMA_DECAY) for t in range(10)} == {1}
