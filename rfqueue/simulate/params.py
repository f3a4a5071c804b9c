"""What one simulation run is told, checked before anything runs.

Times are in seconds. The arrival rate is given as a utilisation: tasks arrive as a
Poisson process at ``utilisation * workers / service_mean`` per second, the share of
the whole fleet's capacity that the load asks for (pauses take some of that capacity
away, so a high utilisation plus many pauses overloads the fleet).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rfqueue.settings import SettingsError

#: every policy the simulation models, in the order the table lists them
POLICIES = ("random", "round_robin", "weighted", "least_loaded", "p2c", "hash")
#: service time distributions
SERVICES = ("exponential", "constant", "lognormal")
#: bounds that keep one run within a few GB and minutes (the hash ring holds 160 points
#: per worker; each task costs about 200 bytes while it runs)
MAX_WORKERS = 100_000
MAX_TASKS = 10_000_000
MAX_PAUSES = 5_000_000


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
    #: policies to compare, each on the same arrivals, service times and pauses
    policies: tuple[str, ...] = POLICIES
    #: move the tasks waiting in a paused worker's queue to up workers at once
    rescue: bool = True
    #: seed of every random draw: the same seed gives the same figures
    seed: int = 1

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes: Any) -> SimulationParams:
        """A copy with some values changed (and checked again)."""
        return dataclasses.replace(self, **changes)

    @property
    def arrival_rate(self) -> float:
        """Tasks per second."""
        return self.utilisation * self.workers / self.service_mean

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
    _check(p.service in SERVICES, "service", f"must be one of {', '.join(SERVICES)}")
    for name in ("service_mean", "lognormal_sigma"):
        value = _number(getattr(p, name), name)
        _check(value > 0, name, f"must be positive, got {value}")
    for name in ("pause_rate", "pause_duration"):
        value = _number(getattr(p, name), name)
        _check(value >= 0, name, f"must not be negative, got {value}")
    _check(
        p.expected_pauses <= MAX_PAUSES,
        "pause_rate",
        f"would draw about {p.expected_pauses:,.0f} pauses; at most {MAX_PAUSES:,}",
    )
    _check(bool(p.policies), "policies", "name at least one policy")
    for name in p.policies:
        _check(
            name in POLICIES, "policies", f"unknown policy {name!r}; one of {', '.join(POLICIES)}"
        )
    _check(len(set(p.policies)) == len(p.policies), "policies", "a policy is named twice")
    _check(isinstance(p.seed, int) and p.seed >= 0, "seed", f"must be 0 or more, got {p.seed}")


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
