"""Table cost by fleet size: what each process pays per refresh, beat and reap.

Every process with a router or a worker re-reads the whole table each
``refresh_interval`` (a copy is what keeps Redis off the per-task path), every worker
beats each ``heartbeat_interval``, one rescuer per ``rescue_interval`` scans the
table for silent workers (the reap lease), and Prometheus scrapes ``rfqueue metrics``
(one whole exposition: the table, every queue's depth and head, the event log, the
rescue and router hashes). This family registers 10 to 10,000
workers in a private Redis and times each operation: the caller's wall time, and the
Redis server's own time per command from ``INFO commandstats`` (Redis runs commands
one at a time, so that is the share of its single thread each call takes). The rows
compare each size with 10 workers; docs/deployment.md turns them into settings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from rfqueue.bench.common import Bench, Row, median
from rfqueue.settings import Settings
from rfqueue.table import FailureTable

#: fleet sizes measured; the first is every row's baseline
SIZES = (10, 100, 1_000, 10_000)
QUICK_SIZES = (10, 1_000)


def run(bench: Bench) -> list[Row]:
    sizes = bench.pick(QUICK_SIZES, SIZES)
    costs = {n: measure(bench, n) for n in sizes}
    base = costs[sizes[0]]
    rows = []
    for n in sizes[1:]:
        for op in ("read", "heartbeat", "reap", "scrape"):
            ours, theirs = costs[n][op], base[op]
            rows.append(
                Row(
                    f"{'exporter' if op == 'scrape' else 'table'} {op}, {n:,} workers",
                    f"{ours[0] * 1e3:.2f} ms (Redis {ours[1]:.0f} us)",
                    f"{theirs[0] * 1e3:.2f} ms (Redis {theirs[1]:.0f} us) at {sizes[0]}",
                    ours[0] / theirs[0],
                    note="reported only: the input of docs/deployment.md's sizing",
                )
            )
    return rows


def measure(bench: Bench, workers: int) -> dict[str, tuple[float, float]]:
    """``{operation: (median wall seconds, Redis microseconds per call)}`` at this size."""
    bench.flush()
    client = bench.client()
    table = FailureTable(client, "rfqueue", heartbeat_timeout=3600)
    names = [f"w{i}@host{i % 100}" for i in range(workers)]
    for name in names:
        table.register(name, f"rfqueue.{name}")
    # A fleet beating for an hour: the reap then checks every worker (a fresh fleet's
    # silence would count from its first beat, and the scan would stop at once).
    client.hset(table.keys.liveness, "since", time.time() - 3600)
    rounds = bench.pick(5, 15)
    return {
        "read": _timed(client, rounds, table.read),
        "heartbeat": _timed(client, rounds * 20, lambda: table.heartbeat(names[0], "q")),
        # No lease here: this is the one scan a lease period pays for.
        "reap": _timed(client, rounds, lambda: table.reap(60)),
        "scrape": _timed(client, rounds, _scraper(bench, table, names)),
    }


def _scraper(bench: Bench, table: FailureTable, names: list[str]) -> Callable[[], bytes]:
    """One exposition as Prometheus gets it, with a task waiting in every tenth queue and
    every queue in the rescue counters."""
    from prometheus_client import CollectorRegistry, generate_latest

    from rfqueue.monitoring.metrics import TableCollector

    client = table.client
    for name in names[::10]:
        client.lpush(f"rfqueue.{name}", json.dumps({"properties": {"delivery_tag": name}}))
    client.hset(table.keys.rescued, mapping={f"from:rfqueue.{n}": 1 for n in names})
    registry = CollectorRegistry()
    settings = Settings(redis_url=bench.server.url, namespace="rfqueue")
    registry.register(TableCollector(settings, table))
    return lambda: generate_latest(registry)


def _timed(client: Any, rounds: int, call: Callable[[], Any]) -> tuple[float, float]:
    call()  # load the scripts, warm the connection
    client.config_resetstat()
    walls = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        walls.append(time.perf_counter() - began)
    stats = client.info("commandstats")
    server_us = sum(float(s["usec"]) for s in stats.values() if "usec" in s) / rounds
    return median(walls), server_us
