"""The blast-radius budget of a chaos pause: fleet-wide and inside every pool.

``pause.lua`` applies it atomically, in the step that takes the pause; the methods here
are the same rules in Python, for previews (a dry run) and for checking settings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rfqueue.settings import Settings
from rfqueue.table.entry import Entry, State
from rfqueue.table.service import pools_or_default
from rfqueue.validation import pool_max_paused, pool_min_up


@dataclass(frozen=True)
class Budget:
    """How many workers may be paused, draining or down at once, and how many must stay up.

    ``max_paused`` is a count when it is an ``int`` and a fraction of the registered
    fleet when it is a ``float`` below 1.
    """

    max_paused: int | float
    min_up: int = 1
    #: per-pool overrides of ``max_paused`` and ``min_up``; other pools use those two
    pool_max_paused: Mapping[str, int | float] = field(default_factory=dict)
    pool_min_up: Mapping[str, int] = field(default_factory=dict)
    #: the pool of entries with no known pools (from before pools): the default queue
    default_pool: str = "celery"
    #: down workers silent this long have departed and count nowhere (None: all count)
    departed_after: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings, default_pool: str = "celery") -> Budget:
        """The budget ``settings`` give, fleet-wide and per pool."""
        return cls(
            settings.max_paused,
            settings.min_up,
            pool_max_paused(settings.pool_max_paused),
            pool_min_up(settings.pool_min_up),
            default_pool,
            settings.departed_silence,
        )

    def present(self, entries: Iterable[Entry], now: float) -> list[Entry]:
        """The entries the budget counts: all but the departed."""
        return [e for e in entries if not e.departed(now, self.departed_after)]

    def departed_arg(self) -> str:
        """pause.lua's ARGV[11]: the silence after which a down worker counts nowhere."""
        return "" if self.departed_after is None else repr(float(self.departed_after))

    def allows(self, not_up: int, total: int) -> bool:
        """Whether one more pause fits while ``not_up`` of ``total`` workers are out.

        The same rule ``pause.lua`` applies atomically; this copy is for previews only.
        """
        limit = self.max_paused
        if isinstance(limit, float):
            limit = math.floor(limit * total)
        return not_up + 1 <= limit and total - not_up - 1 >= self.min_up

    def as_arg(self) -> str:
        return limit_arg(self.max_paused)

    def pools_arg(self) -> str:
        """pause.lua's last argument: the per-pool budget (see ``pool_budget_allows``)."""
        return json.dumps(
            {
                "default": self.default_pool,
                "max": {pool: limit_arg(v) for pool, v in self.pool_max_paused.items()},
                "min": dict(self.pool_min_up),
            }
        )

    def limits(self, pool: str, members: int) -> tuple[int, int]:
        """``(max out, min up)`` inside ``pool`` of ``members`` registered workers."""
        limit = self.pool_max_paused.get(pool, self.max_paused)
        if isinstance(limit, float):
            limit = math.floor(limit * members)
        return limit, self.pool_min_up.get(pool, self.min_up)

    def allows_in_pools(self, entry: Entry, entries: Iterable[Entry], now: float,
                        out: Iterable[str] = ()) -> bool:  # fmt: skip
        """Whether pausing ``entry`` keeps every pool it serves within its budget.

        ``out``: workers to count as not up besides the table's (a dry run's plan).
        The same rule as ``pool_budget_allows`` in the scripts.
        """
        everyone, planned = self.present(entries, now), set(out)
        for pool in pools_or_default(entry.pools, self.default_pool):
            members = [e for e in everyone if pool in pools_or_default(e.pools, self.default_pool)]
            not_up = sum(
                e.worker in planned or e.effective_state(now) is not State.UP for e in members
            )
            limit, floor = self.limits(pool, len(members))
            if not_up + 1 > limit or len(members) - not_up - 1 < floor:
                return False
        return True


def limit_arg(max_paused: int | float) -> str:
    """A ``max_paused`` as the scripts read it: ``count:N`` or ``fraction:F``."""
    if isinstance(max_paused, float):
        return f"fraction:{max_paused!r}"
    return f"count:{max_paused}"
