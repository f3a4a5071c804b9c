"""What one simulation run is told, checked before anything runs.

Times are in seconds. The arrival rate is given as a utilisation: tasks arrive as a
Poisson process at ``utilisation * capacity`` per second, where the capacity is the
sum of the workers' speeds over the mean task length (``workers / service_mean`` on
a uniform fleet): the share of the whole fleet's capacity that the load asks for
(pauses take some of that capacity away, so a high utilisation plus many pauses
overloads the fleet).

A task's length is what it takes a worker of speed 1; a worker of speed ``s`` takes
``length / s``. Lengths come from ``service`` and ``service_mean``, or from a
``mix`` of fixed lengths (one task in ten 100 ms, the rest 5 ms).

Two models (``model``): ``exact``, each worker serves its own queue and the router
knows every backlog at every instant; ``broker``, workers with prefetch 1 pull from
their own queue and the pool's shared queue, and each of ``routers`` routers knows
only what a real one can (:mod:`rfqueue.simulate.broker`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rfqueue.settings import SettingsError

#: every policy the exact model simulates, in the order the table lists them
POLICIES = ("random", "round_robin", "weighted", "least_loaded", "p2c", "hash")
#: the designs the broker model compares; ``shared`` is plain Celery, the baseline
BROKER_POLICIES = (
    "shared",
    "round_robin",
    "random",
    "p2c",
    "least_loaded",
    "jiq",
    "sed",
    "least_outstanding",
    "p2c_ewma",
    "spill",
)
#: models: ``exact`` (fresh, perfect backlogs, push only) and ``broker`` (as through a broker)
MODELS = ("exact", "broker")
#: where a worker's idle and busy announcements go: one random router, or every router
ANNOUNCE_TO = ("one", "all")
#: service time distributions
SERVICES = ("exponential", "constant", "lognormal")
#: how tasks arrive: a Poisson process, or evenly spaced (an open-loop producer's sends)
ARRIVALS = ("poisson", "even")
#: bounds that keep one run within a few GB and minutes (the hash ring holds 160 points
#: per worker; each task costs about 200 bytes while it runs)
MAX_WORKERS = 100_000
MAX_TASKS = 10_000_000
MAX_PAUSES = 5_000_000
MAX_ROUTERS = 10_000
MAX_SPILL_BOUND = 100


class ParamError(SettingsError):
    """A simulation parameter out of range; the message starts with the parameter's name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


@dataclass(frozen=True)
class SimulationParams:
    """One workload, routed by one or several policies."""

    #: workers in the fleet, each with its own FIFO queue
    workers: int = 10_000
    #: tasks to route (the run ends when the last one is done)
    tasks: int = 1_000_000
    #: arrival rate as a share of the fleet's capacity, 0 < utilisation < 1
    utilisation: float = 0.9
    #: ``poisson`` (random gaps) or ``even`` (one task every 1 / rate seconds)
    arrivals: str = "poisson"
    #: service time distribution: one of :data:`SERVICES`
    service: str = "exponential"
    #: mean service time (seconds)
    service_mean: float = 1.0
    #: ``lognormal`` only: sigma of the underlying normal (its spread)
    lognormal_sigma: float = 1.0
    #: pauses per worker per second of up time (a Poisson process); 0 for none
    pause_rate: float = 0.005
    #: how long each pause lasts (seconds)
    pause_duration: float = 10.0
    #: policies to compare, each on the same arrivals, service times and pauses;
    #: empty: every policy of the model
    policies: tuple[str, ...] = ()
    #: move the tasks waiting in a paused worker's queue to up workers at once
    rescue: bool = True
    #: seed of every random draw: the same seed gives the same figures
    seed: int = 1
    #: speed of each worker, repeated over the fleet: (1, 1, 0.2) makes every third 5x slower
    speeds: tuple[float, ...] = (1.0,)
    #: fixed task lengths and their shares, ((0.9, 0.005), (0.1, 0.1)); empty: ``service``
    mix: tuple[tuple[float, float], ...] = ()
    #: ``exact`` or ``broker``: see the module's docstring
    model: str = "exact"
    #: broker model: independent routers (producers), each routing a random share of tasks
    routers: int = 4
    #: broker model: seconds between two reads of every queue's depth, per router
    depth_interval: float = 0.5
    #: broker model: seconds between two heartbeats of a worker (they carry its EWMA)
    heartbeat_interval: float = 1.0
    #: broker model: seconds a pub/sub message takes (idle announcements, completions)
    announce_latency: float = 0.001
    #: broker model: a worker's idle announcement goes to ``one`` random router or ``all``
    announce_to: str = "one"
    #: broker model, ``spill``: a dedicated queue only below this many believed outstanding
    spill_bound: int = 1

    def __post_init__(self) -> None:
        if not self.policies:  # frozen: set once, before anyone sees it
            object.__setattr__(self, "policies", policies_of(self.model))
        validate(self)

    def replace(self, **changes: Any) -> SimulationParams:
        """A copy with some values changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    @property
    def task_mean(self) -> float:
        """Mean task length at speed 1 (seconds)."""
        if self.mix:
            return sum(share * length for share, length in self.mix)
        return self.service_mean

    @property
    def speed_total(self) -> float:
        """The fleet's speeds added up (the number of workers when all are 1)."""
        whole, rest = divmod(self.workers, len(self.speeds))
        return whole * sum(self.speeds) + sum(self.speeds[:rest])

    def speed(self, worker: int) -> float:
        """The speed of ``worker``."""
        return self.speeds[worker % len(self.speeds)]

    @property
    def arrival_rate(self) -> float:
        """Tasks per second."""
        return self.utilisation * self.speed_total / self.task_mean

    @property
    def horizon(self) -> float:
        """The expected time of the last arrival (seconds)."""
        return self.tasks / self.arrival_rate

    @property
    def expected_pauses(self) -> float:
        """Pauses drawn over the horizon, all workers together."""
        if self.pause_rate == 0 or self.pause_duration == 0:
            return 0.0
        cycle = 1 / self.pause_rate + self.pause_duration  # one up spell and one pause
        return self.workers * self.horizon / cycle


def validate(p: SimulationParams) -> None:
    """Raise :class:`ParamError` naming the first bad parameter."""
    _whole(p.workers, "workers", 1, MAX_WORKERS)
    _whole(p.tasks, "tasks", 1, MAX_TASKS)
    _number(p.utilisation, "utilisation")
    _check(
        0 < p.utilisation < 1, "utilisation", f"must be above 0 and below 1, got {p.utilisation}"
    )
    _check(p.arrivals in ARRIVALS, "arrivals", f"must be one of {', '.join(ARRIVALS)}")
    _check(p.service in SERVICES, "service", f"must be one of {', '.join(SERVICES)}")
    for name in ("service_mean", "lognormal_sigma"):
        value = _number(getattr(p, name), name)
        _check(value > 0, name, f"must be positive, got {value}")
    _validate_speeds(p)  # before anything that needs the arrival rate
    _validate_mix(p.mix)
    for name in ("pause_rate", "pause_duration"):
        value = _number(getattr(p, name), name)
        _check(value >= 0, name, f"must not be negative, got {value}")
    _check(
        p.expected_pauses <= MAX_PAUSES,
        "pause_rate",
        f"would draw about {p.expected_pauses:,.0f} pauses; at most {MAX_PAUSES:,}",
    )
    _check(p.model in MODELS, "model", f"must be one of {', '.join(MODELS)}, got {p.model!r}")
    _validate_policies(p)
    _check(isinstance(p.seed, int) and p.seed >= 0, "seed", f"must be 0 or more, got {p.seed}")
    _validate_broker(p)


def _validate_policies(p: SimulationParams) -> None:
    known = policies_of(p.model)
    _check(bool(p.policies), "policies", "name at least one policy")
    for name in p.policies:
        _check(
            name in known,
            "policies",
            f"unknown policy {name!r} for the {p.model} model; one of {', '.join(known)}",
        )
    _check(len(set(p.policies)) == len(p.policies), "policies", "a policy is named twice")


def _validate_speeds(p: SimulationParams) -> None:
    _check(
        isinstance(p.speeds, tuple) and 1 <= len(p.speeds) <= p.workers,
        "speeds",
        f"give from 1 to {p.workers:,} speeds (one per worker, repeated), got {len(p.speeds)}",
    )
    for speed in p.speeds:
        _check(_number(speed, "speeds") > 0, "speeds", f"must be positive, got {speed}")


def _validate_mix(mix: tuple[tuple[float, float], ...]) -> None:
    for share, length in mix:
        _check(0 < _number(share, "mix") <= 1, "mix", f"a share must be in (0, 1], got {share}")
        _check(_number(length, "mix") > 0, "mix", f"a task length must be positive, got {length}")
    total = sum(share for share, _ in mix)
    _check(not mix or abs(total - 1) < 1e-9, "mix", f"the shares must add up to 1, got {total:g}")


def _validate_broker(p: SimulationParams) -> None:
    _whole(p.routers, "routers", 1, MAX_ROUTERS)
    for name in ("depth_interval", "heartbeat_interval"):
        value = _number(getattr(p, name), name)
        _check(value > 0, name, f"must be positive, got {value}")
    latency = _number(p.announce_latency, "announce_latency")
    _check(latency >= 0, "announce_latency", f"must not be negative, got {latency}")
    _check(
        p.announce_to in ANNOUNCE_TO,
        "announce_to",
        f"must be one of {', '.join(ANNOUNCE_TO)}, got {p.announce_to!r}",
    )
    _whole(p.spill_bound, "spill_bound", 0, MAX_SPILL_BOUND)


def policies_of(model: str) -> tuple[str, ...]:
    """The policies a model knows, in table order."""
    return BROKER_POLICIES if model == "broker" else POLICIES


def parse_speeds(text: str) -> tuple[float, ...]:
    """``"1,1,0.2"`` as speeds; a :class:`ParamError` for ``speeds`` when it is not numbers."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ParamError("speeds", f"give numbers separated by commas, got {text!r}") from None


def parse_mix(text: str) -> tuple[tuple[float, float], ...]:
    """``"0.9:0.005,0.1:0.1"`` (share:seconds, ...) as a mix; ``""`` for none."""
    if not text:
        return ()
    try:
        pairs = [part.split(":") for part in text.split(",")]
        return tuple((float(share), float(length)) for share, length in pairs)
    except ValueError:
        raise ParamError(
            "mix", f"give share:seconds pairs separated by commas, got {text!r}"
        ) from None


def _whole(value: Any, name: str, low: int, high: int) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool), name, "must be a whole number")
    _check(low <= value <= high, name, f"must be from {low:,} to {high:,}, got {value:,}")


def _number(value: Any, name: str) -> float:
    _check(
        isinstance(value, (int, float)) and not isinstance(value, bool), name, "must be a number"
    )
    _check(math.isfinite(value), name, f"must be a finite number, got {value}")
    return float(value)


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ParamError(name, problem)
