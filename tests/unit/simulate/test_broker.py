"""The broker model's event loop: prefetch-1 workers pulling two queues, never while paused.

:func:`check_broker_run` states what must hold for any run, whatever the design;
hypothesis throws small fleets, speeds, task mixes, routers and pauses at it, and an
instrumented run checks at every step that no worker idles while a queue it consumes
holds a task.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rfqueue.simulate.broker import BrokerSimulation, run_design
from rfqueue.simulate.broker_run import BrokerRun
from rfqueue.simulate.engine import run_policy
from rfqueue.simulate.params import BROKER_POLICIES, SimulationParams
from rfqueue.simulate.workload import make_workload


def broker(**values: object) -> SimulationParams:
    values.setdefault("policies", ("shared",))
    return SimulationParams(model="broker", **values)  # type: ignore[arg-type]


def check_broker_run(run: BrokerRun, p: SimulationParams) -> None:
    """Every invariant of a broker-model run; an AssertionError names the broken one."""
    assert len(run.worker) == p.tasks and ((run.worker >= 0) & (run.worker < p.workers)).all()
    assert (run.routed_at >= run.arrival).all(), "routed before it arrived"
    assert (run.start >= run.routed_at).all(), "started before it was routed"
    lengths = make_workload(p).service
    speeds = np.asarray([p.speed(w) for w in range(p.workers)])
    ran = run.finish - run.start
    np.testing.assert_allclose(ran, lengths / speeds[run.worker], err_msg="ran at the wrong speed")
    if not p.rescue:
        assert run.moved == 0 and (run.routed_at == run.arrival).all()
    _check_fifo(run.routed_at[run.shared], run.start[run.shared], "the shared queue")
    for w in range(p.workers):
        _check_worker(run, p, w)


def _check_fifo(routed: np.ndarray, start: np.ndarray, what: str) -> None:
    order = np.lexsort((start, routed))
    assert (np.diff(start[order]) >= 0).all(), f"{what} served out of order"


def _check_worker(run: BrokerRun, p: SimulationParams, w: int) -> None:
    mine = np.flatnonzero(run.worker == w)
    mine = mine[np.argsort(run.start[mine], kind="stable")]
    start, finish = run.start[mine], run.finish[mine]
    assert (start[1:] >= finish[:-1]).all(), f"worker {w} ran two tasks at once"
    own = mine[~run.shared[mine]]
    _check_fifo(run.routed_at[own], run.start[own], f"worker {w}'s dedicated queue")
    paused = run.pauses.worker == w
    routed = run.routed_at[own]
    for begin, end in zip(run.pauses.start[paused], run.pauses.end[paused], strict=True):
        assert not ((start >= begin) & (start < end)).any(), f"{w} started a task while paused"
        assert not ((routed >= begin) & (routed < end)).any(), f"{w} was sent a task while paused"
        if p.rescue:
            waiting = (routed < begin) & (run.start[own] >= begin)
            assert not waiting.any(), f"{w} kept a task in its queue through a pause"


class Watched(BrokerSimulation):
    """A simulation that checks, after every step, that no up worker idles with work."""

    steps = 0

    def handlers(self):  # type: ignore[no-untyped-def]
        return tuple(self._watch(h) for h in super().handlers())

    def route(self, task: int, now: float) -> None:
        super().route(task, now)
        self.assert_work_conserving()

    def _watch(self, handler):  # type: ignore[no-untyped-def]
        def watched(when: float, a: int, b: int) -> None:
            handler(when, a, b)
            self.assert_work_conserving()

        return watched

    def assert_work_conserving(self) -> None:
        self.steps += 1
        for w in self.fleet.up:
            if self.running[w] < 0:
                assert not self.shared, f"worker {w} idles while the shared queue holds tasks"
                assert not self.dedicated[w], f"worker {w} idles with tasks in its queue"
                assert self.idle_token[w], f"idle worker {w} is not blocked on its queues"


params_strategy = st.builds(
    broker,
    workers=st.integers(3, 6),
    tasks=st.integers(50, 300),
    utilisation=st.floats(0.2, 0.95),
    service=st.sampled_from(["exponential", "constant"]),
    service_mean=st.floats(0.05, 1),
    speeds=st.sampled_from([(1.0,), (1.0, 0.2), (2.0, 1.0, 0.5)]),
    mix=st.sampled_from([(), ((0.9, 0.05), (0.1, 1.0))]),
    pause_rate=st.sampled_from([0.0, 0.1, 0.5]),
    pause_duration=st.floats(0.5, 4),
    policies=st.sampled_from(BROKER_POLICIES).map(lambda name: (name,)),
    rescue=st.booleans(),
    routers=st.integers(1, 3),
    depth_interval=st.sampled_from([0.05, 0.5]),
    announce_latency=st.sampled_from([0.0, 0.001, 0.05]),
    announce_to=st.sampled_from(["one", "all"]),
    spill_bound=st.integers(0, 2),
    seed=st.integers(0, 10_000),
)


@settings(max_examples=150, deadline=None)
@given(params_strategy)
def test_any_run_serves_every_task_once_in_order_never_paused_and_never_idles_with_work(
    p: SimulationParams,
) -> None:
    # Given any small fleet, speeds, lengths, routers, feeds and pauses, and any design
    sim = Watched(p, p.policies[0], make_workload(p))
    # When it routes every task, checked at every step
    run = sim.run()
    # Then every invariant holds
    check_broker_run(run, p)
    assert sim.steps >= p.tasks
    event(f"pauses: {len(run.pauses) > 0}, moved: {run.moved > 0}, shared: {run.shared.any()}")


@pytest.mark.parametrize("policy", BROKER_POLICIES)
def test_a_busy_run_with_pauses_keeps_every_invariant(policy: str) -> None:
    # Given 12 workers of three speeds under heavy load, each paused about a fifth of the time
    p = broker(
        workers=12,
        tasks=5000,
        utilisation=0.8,
        speeds=(1.0, 1.0, 0.2),
        mix=((0.9, 0.05), (0.1, 1.0)),
        pause_rate=0.1,
        pause_duration=2,
        policies=(policy,),
        seed=7,
    )
    # When the design routes every task
    run = run_design(p, policy)
    # Then there were pauses and every invariant holds
    assert len(run.pauses) > 50
    check_broker_run(run, p)


@pytest.mark.parametrize("rescue", [True, False])
@pytest.mark.parametrize("pause_rate", [0.0, 0.05])
def test_one_router_round_robin_is_the_exact_models_round_robin(
    rescue: bool, pause_rate: float
) -> None:
    # Given one workload, with or without pauses, and a fleet of two speeds
    p = SimulationParams(
        workers=8,
        tasks=3000,
        speeds=(1.0, 0.5),
        pause_rate=pause_rate,
        pause_duration=5,
        rescue=rescue,
        routers=1,
        seed=4,
    )
    workload = make_workload(p)
    # When round robin, which needs no information, routes it in both models
    exact = run_policy(p, "round_robin", workload)
    pulled = run_design(
        p.replace(model="broker", policies=("round_robin",)), "round_robin", workload
    )
    # Then every task goes to the same worker and starts at the same time
    np.testing.assert_array_equal(pulled.worker, exact.worker)
    np.testing.assert_allclose(pulled.start, exact.start)
    assert pulled.moved == exact.moved
    assert not pulled.shared.any()


def test_spill_with_bound_zero_is_plain_celery() -> None:
    # Given a mixed workload with pauses
    p = broker(workers=5, tasks=4000, mix=((0.9, 0.01), (0.1, 0.2)), pause_rate=0.05, seed=3)
    workload = make_workload(p)
    # When spill with B = 0 and the shared queue route it
    spill = run_design(p.replace(spill_bound=0), "spill", workload)
    shared = run_design(p, "shared", workload)
    # Then they are the same run, and spill sent no message
    np.testing.assert_array_equal(spill.start, shared.start)
    np.testing.assert_array_equal(spill.worker, shared.worker)
    assert spill.messages == 0 and spill.shared.all()


def erlang_c(servers: int, load: float) -> float:
    """The chance that a task waits in M/M/c with ``servers`` and ``load`` erlangs offered."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    return top / (sum(load**k / math.factorial(k) for k in range(servers)) + top)


def test_the_shared_queue_is_m_m_c_as_erlang_c_says() -> None:
    # Given 3 equal workers, Poisson arrivals at 75 % and exponential service, three seeds
    # (ten seeds of 500,000 tasks gave a mean wait of 1.001 +- 0.004 times Erlang C's)
    runs = [
        run_design(
            broker(
                workers=3,
                tasks=200_000,
                utilisation=0.75,
                service_mean=0.01,
                pause_rate=0,
                seed=seed,
            ),
            "shared",
        )
        for seed in (10, 11, 12)
    ]
    # When plain Celery's shared queue serves them
    waited = np.mean([(run.wait > 0).mean() for run in runs])
    mean_wait = np.mean([run.wait.mean() for run in runs])
    # Then the share of tasks that wait, and the mean wait, are Erlang C's
    chance = erlang_c(3, 3 * 0.75)
    assert abs(waited / chance - 1) < 0.01, (waited, chance)
    assert abs(mean_wait / (chance * 0.01 / (3 - 3 * 0.75)) - 1) < 0.04, mean_wait


def test_the_shared_queue_gives_a_slow_worker_fewer_tasks() -> None:
    # Given workers of speed 1, 1 and 0.2 pulling from the shared queue, 85 % busy
    p = broker(
        workers=3,
        tasks=50_000,
        utilisation=0.85,
        service="constant",
        service_mean=0.005,
        speeds=(1.0, 1.0, 0.2),
        pause_rate=0,
    )
    run = run_design(p, "shared")
    # Then each serves about its speed's share (the slow one a little more: it is idle
    # less often, so it is first in line more often), and nobody waits long
    served = np.bincount(run.worker, minlength=3) / p.tasks
    assert 0.08 < served[2] < 0.13 and abs(served[0] - served[1]) < 0.02, served
    assert np.quantile(run.latency, 0.99) < 0.1


def test_a_worker_alternates_its_two_queues_as_kombu_rotates_them() -> None:
    # Given one worker with four tasks in its dedicated queue and two in the shared one
    p = broker(workers=1, tasks=6, pause_rate=0)
    sim = BrokerSimulation(p, "shared", make_workload(p))
    sim.dedicated[0].extend([0, 1, 2, 3])
    sim.shared.extend([4, 5])
    # When it takes the next task seven times
    taken = []
    for _ in range(7):
        sim.take_next(0, 0.0)
        taken.append(sim.running[0])
        sim.running[0] = -1
    # Then it takes turns, keeps to its own queue once the shared one is empty, and at
    # the seventh finds both empty and blocks
    assert taken[:6] == [0, 4, 1, 5, 2, 3]
    assert sim.idle_token[0] and sim.blocked[-1] == (0, sim.idle_token[0])


def test_a_paused_worker_takes_nothing_and_the_shared_queue_waits_for_the_others() -> None:
    # Given two workers, plain Celery, and one worker paused for long spells
    p = broker(workers=2, tasks=3000, utilisation=0.4, pause_rate=0.2, pause_duration=5, seed=2)
    run = run_design(p, "shared")
    assert len(run.pauses) > 5
    # Then nothing was moved (nothing waits in a dedicated queue), nothing started on a
    # paused worker, and every task ran
    assert run.moved == 0
    check_broker_run(run, p)
    assert (run.finish > 0).all()


def test_the_rescue_moves_only_the_dedicated_queue_and_counts_the_moves() -> None:
    # Given round robin on 50 workers, each paused a sixth of the time for 10 s at a stretch
    p = broker(workers=50, tasks=20_000, utilisation=0.6, pause_rate=0.02, pause_duration=10)
    workload = make_workload(p)
    on = run_design(p.replace(policies=("round_robin",)), "round_robin", workload)
    off = run_design(p.replace(policies=("round_robin",), rescue=False), "round_robin", workload)
    # Then the rescue moved tasks, none through the shared queue, and cut the tail
    assert on.moved > 100 and off.moved == 0 and not on.shared.any()
    assert np.quantile(on.latency, 0.99) < 0.85 * np.quantile(off.latency, 0.99)


@pytest.mark.parametrize(("announce_to", "per_task"), [("one", 2.0), ("all", 8.0)])
def test_announcements_cost_at_most_two_messages_a_task_per_router_told(
    announce_to: str, per_task: float
) -> None:
    # Given spill with four routers, told one at a time or all at once
    p = broker(workers=10, tasks=5000, utilisation=0.6, routers=4, announce_to=announce_to)
    run = run_design(p.replace(policies=("spill",)), "spill", make_workload(p))
    # Then each idle spell costs one message in, one out, to one router or to all four
    assert (
        0 < run.messages / p.tasks <= per_task + 10 / p.tasks * (4 if announce_to == "all" else 1)
    )
