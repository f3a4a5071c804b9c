"""How fresh each router's copy of the table is (reported by rfqueue.routing.presence,
in the format rfqueue.keys describes).

``rfqueue_router_snapshot_age_seconds{router}`` is the time since the router's last
full read of the table, ``rfqueue_router_refresh_interval_seconds{router}`` the
longest it should go without one. Routers report from their refresh thread, so one
whose thread stopped also stops reporting: its age grows. A router not heard from
for ``GONE_AFTER`` is taken as gone and its field is dropped here (one HDEL, only
when there is something to drop). Ages compare the router's clock with this
exporter's, both the table's (the Redis server's) clock.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import redis

from rfqueue.keys import ROUTER_GONE_AFTER as GONE_AFTER
from rfqueue.keys import Keys

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric


def router_families(client: Any, keys: Keys, now: float | None = None) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    now = time.time() if now is None else now
    age = GaugeMetricFamily(
        "rfqueue_router_snapshot_age_seconds",
        "Seconds since a router last read the whole failure table",
        labels=["router"],
    )
    interval = GaugeMetricFamily(
        "rfqueue_router_refresh_interval_seconds",
        "The longest a router's copy of the table should go without a full read",
        labels=["router"],
    )
    gone = []
    for router, raw in sorted(client.hgetall(keys.routers).items()):
        record = _record(raw)
        if record is None or now - record["reported"] > GONE_AFTER:
            gone.append(router)
            continue
        age.add_metric([str(router)], max(0.0, now - record["read"]))
        interval.add_metric([str(router)], record["interval"])
    if gone:
        # Best effort: a scrape must not fail for want of a tidy-up (a read-only replica).
        with contextlib.suppress(redis.RedisError):
            client.hdel(keys.routers, *gone)
    yield age
    yield interval
    yield GaugeMetricFamily(
        "rfqueue_routers",
        f"Routers that reported within the last {GONE_AFTER:g} s",
        value=len(age.samples),
    )


def _record(raw: Any) -> dict[str, float] | None:
    """A router's report, or None when it is not one (dropped like a gone router's)."""
    try:
        data = json.loads(raw)
        return {name: float(data[name]) for name in ("read", "interval", "reported")}
    except (ValueError, TypeError, KeyError):
        return None
