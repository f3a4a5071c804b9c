"""Where ``dispatch_many``'s time goes, by cProfile, for the batch dispatch row's note.

One call is profiled (after the timed rounds, on emptied queues) and its time split by
the cumulative time of the functions that do each part: routing (Celery's router with
rfqueue's), the task message (``create_task_message`` and the argument reprs), encoding
(kombu's body serializer and the Redis message, base64 and JSON), the ids, and the
write (declarations and the one transaction). The rest is the batch's own bookkeeping.
cProfile slows Python code more than C code: the shares are a map, not a stopwatch.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

#: part -> (file suffix, function name) pairs whose cumulative times add up to it
PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "routing": (("celery/app/routes.py", "route"),),
    "message": (("celery/app/amqp.py", "as_task_v2"), ("rfqueue/routing/batch.py", "_reprs")),
    "encoding": (("kombu/serialization.py", "dumps"), ("rfqueue/routing/wire.py", "direct_push")),
    "ids": (("rfqueue/routing/wire.py", "uuids"),),
    "write": (("rfqueue/routing/batch.py", "write"),),
}
TOTAL = ("rfqueue/routing/dispatch.py", "dispatch_many")


def breakdown(call: Callable[[], Any]) -> dict[str, float]:
    """Each part's share of ``call()``'s time under cProfile (``other`` included)."""
    profile = cProfile.Profile()
    profile.runcall(call)
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(file: str, name: str) -> float:
        return float(sum(v[3] for (f, _, n), v in stats.items() if n == name and f.endswith(file)))

    total = cumulative(*TOTAL) or 1.0
    shares = {part: sum(cumulative(*fn) for fn in fns) / total for part, fns in PARTS.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def describe(shares: dict[str, float]) -> str:
    """``routing 14%, message 9%, ...`` in the order of :data:`PARTS`."""
    return ", ".join(f"{part} {share:.0%}" for part, share in shares.items())
