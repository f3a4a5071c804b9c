"""The Fleet page's JSON document, built from the table, the broker's depths and the routed counts.

Nothing here knows Flower or Tornado: :func:`fleet_document` is what
``GET <prefix>/rfqueue/api/fleet`` answers, and what the page draws every few seconds.
Times are epoch seconds on the server's clock; ``now`` lets the page count down a
pause without trusting the browser's clock.

States are read as the words the table stores, not as a closed list, so states and
reasons added later show without a change here: an entry state ``draining`` is shown
as it is, and a pause whose reason is ``outlier`` is shown as ``ejected``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rfqueue.brokers.base import DepthReader, depths_or_none
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, State

#: a pause with this reason is an outlier ejection, and is shown as such
EJECTED_REASON = "outlier"


@dataclass(frozen=True)
class FleetSources:
    """Where the document comes from: the table, the broker's queue depths, the settings."""

    table: FailureTable
    depths: DepthReader
    settings: Settings


def shown_state(entry: Entry, now: float) -> str:
    """The state a person should see: an expired pause is ``up``, an outlier pause ``ejected``."""
    state = entry.effective_state(now).value
    reason = entry.reason.value if entry.reason else None
    if state == State.PAUSED.value and reason == EJECTED_REASON:
        return "ejected"
    return state


def pools_of(entry: Entry) -> list[str]:
    """The shared queues (pools) a worker consumes, once the table records them."""
    return [str(pool) for pool in entry.pools]


def budget_in_use(entries: Iterable[Entry], settings: Settings, now: float) -> dict[str, Any]:
    """The blast-radius budget as ``pause.lua`` counts it: every worker not up uses it."""
    states = [e.effective_state(now) for e in entries]
    total = len(states)
    not_up = sum(1 for state in states if state is not State.UP)
    limit = settings.max_paused
    if isinstance(limit, float):
        limit = math.floor(limit * total)
    up = total - not_up
    return {
        "max_paused": settings.max_paused,
        "limit": limit,
        "min_up": settings.min_up,
        "total": total,
        "up": up,
        "not_up": not_up,
        # how many more the chaos job may pause now (an operator's pause is not budgeted)
        "room": max(0, min(limit - not_up, up - settings.min_up)),
    }


def worker_row(
    entry: Entry,
    now: float,
    settings: Settings,
    depths: Mapping[str, int] | None,
    routed: Mapping[str, int],
) -> dict[str, Any]:
    """One worker as the page shows it."""
    shown = shown_state(entry, now)
    pools = pools_of(entry)
    counting_down = shown in ("paused", "ejected", "draining") and entry.until is not None
    return {
        "worker": entry.worker,
        "queue": entry.queue,
        "state": entry.state.value,
        "shown": shown,
        "reason": entry.reason.value if entry.reason else None,
        "note": entry.note,
        "since": entry.since,
        "until": entry.until,
        "remaining": max(0.0, entry.until - now) if counting_down and entry.until else None,
        "heartbeat": entry.heartbeat,
        "heartbeat_age": None if entry.heartbeat is None else max(0.0, now - entry.heartbeat),
        # routers skip it already; a rescuer or the chaos tick will mark it down
        "silent": shown != "down" and entry.silent(now, settings.heartbeat_timeout),
        "pools": pools,
        "depth": None if depths is None else depths.get(entry.queue, 0),
        "pool_depths": {p: depths.get(p, 0) for p in pools} if depths is not None else None,
        "routed": int(routed.get(entry.queue, 0)),
    }


def read_routed(table: FailureTable) -> dict[str, int]:
    """Tasks routers sent to each queue (``{ns}:routed``), as flushed so far."""
    raw = table.client.hgetall(table.keys.routed)
    return {_text(queue): int(count) for queue, count in raw.items()}


def fleet_document(
    sources: FleetSources,
    now: float | None = None,
    n_events: int = 12,
    actions: Iterable[str] = ("pause", "drain", "resume"),
) -> dict[str, Any]:
    """Every worker, the budget in use and the latest events, as one JSON-ready dict.

    ``actions`` are the buttons the page may draw (the server's, see
    :class:`~rfqueue.flower.backend.FleetBackend`).
    """
    table, settings = sources.table, sources.settings
    entries = table.entries()
    events = table.events(n_events)
    routed = read_routed(table)
    now = table.now() if now is None else now  # the table's clock: the Redis server's
    queues = sorted({q for e in entries.values() for q in [e.queue, *pools_of(e)]})
    depths = depths_or_none(sources.depths, queues)
    workers = [worker_row(entries[n], now, settings, depths, routed) for n in sorted(entries)]
    return {
        "now": now,
        "namespace": settings.namespace,
        "heartbeat_timeout": settings.heartbeat_timeout,
        "max_pause": settings.max_pause,
        "depths_known": depths is not None,
        "workers": workers,
        "budget": budget_in_use(entries.values(), settings, now),
        "events": [vars(event) for event in events],
        "actions": list(actions),
    }


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
