"""Series about the fleet as a whole: workers per pool and the blast-radius budget.

``rfqueue_pool_workers{pool,state}`` counts each worker once in every pool it serves.
An entry that names no pools (a worker from before pools) is counted in the app's
default queue, the pool such a worker consumes. The budget gauges make the chaos
invariant checkable from Prometheus alone: ``rfqueue_chaos_paused`` (workers paused by
chaos right now) never exceeds ``rfqueue_budget_max_paused`` (``max_paused`` resolved
against the registered fleet, as ``pause.lua`` resolves it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from rfqueue.settings import Settings
from rfqueue.table.budget import Budget
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.service import pools_or_default

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


def pool_families(
    entries: Mapping[str, Entry], now: float, default_pool: str = "celery"
) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(
        "rfqueue_pool_workers", "Workers by pool and state", labels=["pool", "state"]
    )
    counts: Counter[tuple[str, str]] = Counter()
    for entry in entries.values():
        state = entry.effective_state(now).value
        for pool in pools_or_default(entry.pools, default_pool):
            counts[(pool, state)] += 1
    for pool in sorted({pool for pool, _ in counts}):
        for state in State:
            family.add_metric([pool, state.value], counts[(pool, state.value)])
    yield family


def max_paused_now(settings: Settings, total: int) -> int:
    """``max_paused`` as a count for a fleet of ``total`` (a fraction is floored)."""
    limit = settings.max_paused
    return math.floor(limit * total) if isinstance(limit, float) else limit


def budget_families(
    settings: Settings, entries: Mapping[str, Entry], now: float, default_pool: str = "celery"
) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    budget = Budget.from_settings(settings, default_pool)
    present = budget.present(entries.values(), now)  # as pause.lua: the departed count nowhere
    chaos = sum(_chaos_paused(e, now) for e in present)
    yield GaugeMetricFamily(
        "rfqueue_budget_max_paused",
        "Most workers chaos may hold paused or down (max_paused for this fleet size)",
        value=max_paused_now(settings, len(present)),
    )
    yield GaugeMetricFamily(
        "rfqueue_budget_min_up",
        "Fewest workers chaos must leave up (min_up)",
        value=settings.min_up,
    )
    yield GaugeMetricFamily(
        "rfqueue_chaos_paused", "Workers paused by the chaos job right now", value=chaos
    )
    yield from pool_budget_families(budget, present, now)


def pool_budget_families(budget: Budget, entries: Iterable[Entry], now: float) -> Iterator[Metric]:
    """The budget inside each pool, as ``pause.lua`` resolves it (``pool_max_paused``...)."""
    from prometheus_client.core import GaugeMetricFamily

    members: dict[str, list[Entry]] = {}
    for entry in entries:
        for pool in pools_or_default(entry.pools, budget.default_pool):
            members.setdefault(pool, []).append(entry)
    limit = GaugeMetricFamily(
        "rfqueue_pool_budget_max_paused",
        "Most workers of a pool chaos may hold paused or down (for its size)",
        labels=["pool"],
    )
    floor = GaugeMetricFamily(
        "rfqueue_pool_budget_min_up",
        "Fewest workers of a pool chaos must leave up",
        labels=["pool"],
    )
    chaos = GaugeMetricFamily(
        "rfqueue_pool_chaos_paused", "Workers of a pool paused by the chaos job", labels=["pool"]
    )
    for pool in sorted(members):
        most, fewest = budget.limits(pool, len(members[pool]))
        limit.add_metric([pool], most)
        floor.add_metric([pool], fewest)
        chaos.add_metric([pool], sum(_chaos_paused(e, now) for e in members[pool]))
    yield from (limit, floor, chaos)


def _chaos_paused(entry: Entry, now: float) -> bool:
    return entry.effective_state(now) is State.PAUSED and entry.reason is Reason.CHAOS
