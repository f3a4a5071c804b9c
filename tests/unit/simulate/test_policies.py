"""The simulated policies behave as rfqueue's do, and as queueing theory says they should."""

from __future__ import annotations

import numpy as np
import pytest

from rfqueue.simulate.engine import Simulation, run_policy
from rfqueue.simulate.params import SimulationParams
from rfqueue.simulate.results import PolicyResult, compare
from rfqueue.simulate.routers import LeastLoadedRouter
from rfqueue.simulate.workload import make_workload


def by_policy(p: SimulationParams) -> dict[str, PolicyResult]:
    return {r.policy: r for r in compare(p, jobs=1).results}


def test_round_robin_balances_exactly() -> None:
    # Given 10 workers that never pause and 1,000 tasks
    p = SimulationParams(workers=10, tasks=1000, pause_rate=0, policies=("round_robin",))
    # When round robin routes them
    run = run_policy(p, "round_robin")
    # Then every worker serves exactly 100, in turn
    assert np.bincount(run.worker, minlength=10).tolist() == [100] * 10
    assert run.worker[:12].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


def test_weighted_with_equal_weights_is_round_robin() -> None:
    # Given one workload with pauses
    p = SimulationParams(workers=12, tasks=3000, pause_rate=0.02, pause_duration=5, seed=4)
    workload = make_workload(p)
    # When weighted (every weight 1) and round robin route it
    weighted, round_robin = (
        run_policy(p, "weighted", workload),
        run_policy(p, "round_robin", workload),
    )
    # Then they make the same choices
    np.testing.assert_array_equal(weighted.worker, round_robin.worker)


def test_p2c_balances_far_better_than_random() -> None:
    # Given 200 workers, 100 tasks each on average, a constant service time, no pauses
    p = SimulationParams(
        workers=200, tasks=20_000, service="constant", pause_rate=0, policies=("random", "p2c")
    )
    # When random and p2c route the same arrivals
    results = by_policy(p)
    random, p2c = results["random"], results["p2c"]
    # Then p2c's busiest worker is close to the mean and random's is far above it
    assert p2c.max_mean_load < 1.10 < 1.20 < random.max_mean_load
    # and the tail of the wait shrinks with it
    assert p2c.p99_wait < random.p99_wait / 4


def test_least_loaded_beats_every_blind_policy_on_the_wait() -> None:
    # Given a busy fleet with pauses
    p = SimulationParams(workers=100, tasks=20_000, pause_rate=0.01, pause_duration=10, seed=2)
    # When every policy routes the same workload
    results = by_policy(p)
    # Then least_loaded, which sees every backlog, has the shortest tail; p2c comes next
    tails = sorted(results, key=lambda name: results[name].p99_wait)
    assert tails[:2] == ["least_loaded", "p2c"]
    assert results["hash"].max_mean_load > results["round_robin"].max_mean_load


@pytest.mark.parametrize("policy", ["random", "round_robin", "p2c", "hash"])
def test_rescue_lowers_the_p99_wait_under_pauses(policy: str) -> None:
    # Given 50 workers, each paused a sixth of the time for 10 s at a stretch
    p = SimulationParams(
        workers=50,
        tasks=20_000,
        utilisation=0.6,
        pause_rate=0.02,
        pause_duration=10,
        policies=(policy,),
        seed=1,
    )
    workload = make_workload(p)
    # When the policy routes the same workload with rescue on and off
    on = Simulation(p, policy, workload).run()
    off = Simulation(p.replace(rescue=False), policy, workload).run()
    # Then the rescue moved tasks, and the tail of the wait is clearly shorter with it
    assert on.moved > 100 and off.moved == 0
    assert np.quantile(on.wait, 0.99) < 0.85 * np.quantile(off.wait, 0.99)


@pytest.mark.parametrize("rescue", [True, False])
def test_least_loaded_buckets_hold_each_up_worker_at_its_true_backlog(rescue: bool) -> None:
    # Given least_loaded on a small fleet with frequent pauses
    p = SimulationParams(
        workers=6,
        tasks=1500,
        utilisation=0.9,
        pause_rate=0.1,
        pause_duration=4,
        rescue=rescue,
        seed=9,
    )
    sim = Simulation(p, "least_loaded", make_workload(p))
    router = sim.router
    assert isinstance(router, LeastLoadedRouter)
    choose, checked = router.choose, []

    def checked_choose(task: int, now: float) -> int:
        # Then before every choice each worker's count is its true backlog, and the
        # buckets hold exactly the up workers, each at its count
        for w in range(p.workers):
            assert router.load[w] == sim.backlog(w, now), (w, now)
            holds = {level for level, members in enumerate(router.levels) if w in members}
            assert holds == ({router.load[w]} if sim.view.is_up[w] else set()), (w, now)
        least = min(router.load[w] for w in sim.view.up)
        worker = choose(task, now)
        # and the choice is an up worker with the least backlog
        assert sim.view.is_up[worker] and router.load[worker] == least + 1
        checked.append(worker)
        return worker

    router.choose = checked_choose  # type: ignore[method-assign]
    # When it routes every task
    run = sim.run()
    assert len(checked) == p.tasks + run.moved and len(run.pauses) > 20
