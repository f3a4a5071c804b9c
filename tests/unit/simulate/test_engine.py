"""The simulation's event loop: every task served once, FIFO, never by a paused worker.

:func:`check_run` states what must hold for any run, whatever the policy; hypothesis
throws small fleets, loads and pause schedules at it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rfqueue.simulate.engine import Run, run_policy
from rfqueue.simulate.params import POLICIES, SERVICES, SimulationParams
from rfqueue.simulate.workload import make_workload


def check_run(run: Run, p: SimulationParams) -> None:
    """Every invariant of a run; an AssertionError names the broken one."""
    assert len(run.worker) == p.tasks and ((run.worker >= 0) & (run.worker < p.workers)).all()
    assert (run.routed_at >= run.arrival).all(), "routed before it arrived"
    assert (run.start >= run.routed_at).all(), "started before it was routed"
    assert (run.wait >= 0).all()
    if not p.rescue:
        assert run.moved == 0 and (run.routed_at == run.arrival).all()
    for w in range(p.workers):
        _check_worker(run, p, w)


def _check_worker(run: Run, p: SimulationParams, w: int) -> None:
    mine = np.flatnonzero(run.worker == w)
    mine = mine[np.argsort(run.start[mine], kind="stable")]
    start, finish, routed = run.start[mine], run.finish[mine], run.routed_at[mine]
    assert (np.diff(routed) >= 0).all(), f"worker {w} served its queue out of order"
    assert (start[1:] >= finish[:-1]).all(), f"worker {w} ran two tasks at once"
    paused = run.pauses.worker == w
    for begin, end in zip(run.pauses.start[paused], run.pauses.end[paused], strict=True):
        assert not ((routed >= begin) & (routed < end)).any(), f"{w} got a task while paused"
        assert not ((start >= begin) & (start < end)).any(), f"{w} started a task while paused"
        if p.rescue:  # what waited at the pause was moved, so nothing routed before it starts after
            assert not ((routed < begin) & (start >= begin)).any(), f"{w} kept a waiting task"
    # Work-conserving: each task starts as soon as it is there and the worker is free,
    # unless that moment falls in a pause; then at the pause's end.
    ready = np.maximum(routed, np.concatenate([[0.0], finish[:-1]]))
    ends = run.pauses.end[paused]
    starts = run.pauses.start[paused]
    inside = (ready[:, None] >= starts[None, :]) & (ready[:, None] < ends[None, :])
    expected = np.where(
        inside.any(axis=1), (ends[None, :] * inside).max(axis=1, initial=0.0), ready
    )
    np.testing.assert_allclose(start, expected, err_msg=f"worker {w} idled with work")


params_strategy = st.builds(
    SimulationParams,
    workers=st.integers(2, 8),  # one worker never pauses: test_one_worker_never_pauses
    # mostly loads long enough for pauses to meet tasks; sometimes a handful of tasks
    tasks=st.integers(100, 400) | st.integers(1, 100),
    utilisation=st.floats(0.2, 0.98),
    service=st.sampled_from(SERVICES),
    service_mean=st.floats(0.1, 3),
    pause_rate=st.sampled_from([0.05, 0.1, 0.3, 1.0]),  # runs without pauses: the tests below
    # mostly pauses of a few services, sometimes none or vanishingly short ones
    pause_duration=st.floats(0.5, 6) | st.floats(0, 6),
    policies=st.sampled_from(POLICIES).map(lambda name: (name,)),
    rescue=st.booleans(),
    seed=st.integers(0, 10_000),
)


@settings(max_examples=200, deadline=None)
@given(params_strategy)
def test_any_run_serves_every_task_once_in_order_and_never_while_paused(
    p: SimulationParams,
) -> None:
    # Given any small fleet, load, pause schedule and policy
    # When the simulation routes every task
    run = run_policy(p, p.policies[0])
    # Then every invariant holds
    check_run(run, p)
    event(f"pauses: {len(run.pauses) > 0}, tasks moved: {run.moved > 0}")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("rescue", [True, False])
def test_a_busy_run_with_many_pauses_keeps_every_invariant(policy: str, rescue: bool) -> None:
    # Given 20 workers under heavy load, each paused about a quarter of the time
    p = SimulationParams(
        workers=20,
        tasks=4000,
        utilisation=0.8,
        pause_rate=0.1,
        pause_duration=3,
        policies=(policy,),
        rescue=rescue,
        seed=7,
    )
    # When the policy routes every task
    run = run_policy(p, policy)
    # Then there were pauses, tasks were moved only with rescue on, and every invariant holds
    assert len(run.pauses) > 100
    assert (run.moved > 0) == rescue
    check_run(run, p)


def test_a_paused_worker_gets_no_new_task_during_its_pause_and_some_around_it() -> None:
    # Given a fleet whose workers pause often, routed round robin; no rescue, so each
    # task stays where it was first routed
    p = SimulationParams(
        workers=8, tasks=3000, pause_rate=0.05, pause_duration=5, rescue=False, seed=3
    )
    run = run_policy(p, "round_robin")
    assert len(run.pauses) >= 10
    checked_around = 0
    for w, begin, end in zip(run.pauses.worker, run.pauses.start, run.pauses.end, strict=True):
        routed = run.routed_at[run.worker == w]
        # Then nothing is routed to it while paused
        assert not ((routed >= begin) & (routed < end)).any()
        # and, up in the 5 s around the pause, it gets work before and after
        mine = run.pauses.worker == w
        others = (run.pauses.end[mine] > begin - 5) & (run.pauses.start[mine] < end + 5)
        if others.sum() == 1 and begin > 5 and end < run.arrival[-1] - 5:
            assert ((routed >= begin - 5) & (routed < begin)).any()
            assert ((routed >= end) & (routed < end + 5)).any()
            checked_around += 1
    assert checked_around >= 5


def test_the_last_up_worker_is_never_paused() -> None:
    # Given two workers that would each be paused most of the time
    p = SimulationParams(workers=2, tasks=2000, pause_rate=1.0, pause_duration=4, seed=5)
    pauses = make_workload(p).pauses
    assert len(pauses) > 10
    # Then no two pauses overlap: one worker is always up
    assert (pauses.start[1:] >= pauses.end[:-1]).all()


def test_every_policy_sees_the_same_workload() -> None:
    # Given one seed
    p = SimulationParams(workers=30, tasks=2000, seed=11)
    # When two policies run
    a, b = run_policy(p, "random"), run_policy(p, "p2c")
    # Then their arrivals, service times and pauses are the same; their choices are not
    np.testing.assert_array_equal(a.arrival, b.arrival)
    np.testing.assert_array_equal(a.service, b.service)
    np.testing.assert_array_equal(a.pauses.start, b.pauses.start)
    assert (a.worker != b.worker).any()


def test_one_worker_never_pauses_and_serves_everything_in_order() -> None:
    # Given a one-worker fleet asked to pause often
    p = SimulationParams(workers=1, tasks=500, pause_rate=1.0, pause_duration=3, seed=2)
    # When random routes every task
    run = run_policy(p, "random")
    # Then the last up worker was never paused and served every task, in arrival order
    assert len(run.pauses) == 0 and (run.worker == 0).all()
    assert (np.diff(run.start) > 0).all()
    check_run(run, p)
