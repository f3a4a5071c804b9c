"""Prometheus metrics: ``rfqueue metrics --port 9808`` serves what Flower cannot show.

A custom collector computes everything on each scrape from Redis: the true depth of
every registered worker's queue (paused ones included: Flower lists only consumed
queues), workers by state, pauses and resumes by reason, tasks routed per queue and
the age of this process's copy of the failure table. Pauses and resumes are counted
from the table's capped event log as this exporter sees it: each event once, by its
version, so the counters only grow (from zero when the exporter starts; a Prometheus
counter reset). The Redis URL appears only with its password masked.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
import redis

from rfqueue.brokers.redis_layout import redis_depth_reader
from rfqueue.console import stop_on_signals
from rfqueue.log import RateLimitedWarning
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Entry, State
from rfqueue.table.registry import snapshot_for
from rfqueue.table.service import pools_or_default
from rfqueue.table.snapshot import Snapshot

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from rfqueue.brokers.base import DepthReader

logger = logging.getLogger(__name__)

#: the command of the compose ``metrics`` service and the README
METRICS_COMMAND = ("rfqueue", "metrics")

#: event actions counted, and the counter each one feeds
COUNTED_ACTIONS = {"pause": "pauses", "resume": "resumes", "down": "downs"}


class TableCollector:
    """A prometheus_client collector for one namespace's table and queues."""

    def __init__(
        self,
        settings: Settings,
        table: FailureTable,
        snapshot: Snapshot | None = None,
        depths: DepthReader | None = None,
        default_pool: str = "celery",
    ):
        self.settings = settings
        #: the pool of workers whose pools are not known (the app's default queue)
        self.default_pool = default_pool
        self.table = table
        self.snapshot = snapshot
        #: the broker's depths (RabbitMQ, or another Redis); by default the table's Redis
        self.depths = depths or redis_depth_reader(table.client)
        self._lock = threading.Lock()
        self._seen_version = 0
        self._actions: Counter[tuple[str, str]] = Counter()
        self._warn = RateLimitedWarning(logger)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("rfqueue_redis_up", "1 if the table's Redis answered this scrape")
        with self._lock:  # scrapes run in server threads; the event counters are shared
            try:
                families = list(self._families())
            except (redis.RedisError, OSError) as exc:
                self._warn("rfqueue: metrics cannot read the failure table: %s", exc)
                families = []
        up.add_metric([], 1 if families else 0)
        yield up
        yield self._info()
        yield from families
        if self.snapshot is not None:
            yield _gauge(
                "rfqueue_snapshot_age_seconds",
                "Seconds since this exporter last read the whole failure table",
                self.snapshot.age(),
            )

    def _info(self) -> Metric:
        from prometheus_client.core import InfoMetricFamily

        info = InfoMetricFamily("rfqueue_exporter", "The table this exporter reads")
        info.add_metric([], {"namespace": self.settings.namespace,
                             "redis": self.settings.safe_redis_url})  # fmt: skip
        return info

    def _families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        version, entries = self.table.read()
        now = time.time()
        depth = GaugeMetricFamily(
            "rfqueue_queue_depth",
            "Messages waiting in a worker's queue, priority lists included",
            labels=["queue", "worker"],
        )
        depths = self.depths([e.queue for e in entries.values()])
        states = GaugeMetricFamily("rfqueue_workers", "Workers by state", labels=["state"])
        per_worker = GaugeMetricFamily(
            "rfqueue_worker_state", "1 for the state each worker is in", labels=["worker", "state"]
        )
        counts = Counter(e.effective_state(now).value for e in entries.values())
        for state in State:
            states.add_metric([state.value], counts[state.value])
        for name in sorted(entries):
            entry = entries[name]
            depth.add_metric([entry.queue, name], depths.get(entry.queue, 0))
            for state in State:
                per_worker.add_metric([name, state.value], entry.effective_state(now) is state)
        routed = CounterMetricFamily(
            "rfqueue_tasks_routed", "Tasks routers sent to each queue", labels=["queue"]
        )
        for queue, n in sorted(self.table.client.hgetall(self.table.keys.routed).items()):
            routed.add_metric([str(queue)], float(n))
        yield from (depth, states, per_worker, self._pool_workers(entries, now), routed)
        yield from self._event_counters()
        yield _gauge("rfqueue_table_version", "Changes made to the failure table", version)

    def _pool_workers(self, entries: dict[str, Entry], now: float) -> Metric:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "rfqueue_pool_workers",
            "Workers of each pool (a queue workers share) by state; one of two pools is in both",
            labels=["pool", "state"],
        )
        counts = Counter(
            (pool, e.effective_state(now).value)
            for e in entries.values()
            for pool in pools_or_default(e.pools, self.default_pool)
        )
        for pool in sorted({pool for pool, _ in counts}):
            for state in State:
                family.add_metric([pool, state.value], counts[(pool, state.value)])
        return family

    def _event_counters(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        events = self.table.events(self.settings.events_max)
        newest = max((e.version for e in events), default=0)
        if newest < self._seen_version:  # the table was reset: its versions start again
            self._seen_version = 0
        for event in events:
            if event.version > self._seen_version and event.action in COUNTED_ACTIONS:
                self._actions[(event.action, event.reason or "")] += 1
        self._seen_version = max(self._seen_version, newest)
        for action, name in COUNTED_ACTIONS.items():
            family = CounterMetricFamily(
                f"rfqueue_{name}", f"Table events '{action}' seen, by reason", labels=["reason"]
            )
            for (seen, reason), n in sorted(self._actions.items()):
                if seen == action:
                    family.add_metric([reason], n)
            yield family


def _gauge(name: str, documentation: str, value: float) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=value)


def serve(
    settings: Settings,
    host: str,
    port: int,
    depths: DepthReader | None = None,
    default_pool: str = "celery",
) -> tuple[Any, Any]:
    """Start the HTTP server in a thread; returns prometheus_client's ``(server, thread)``."""
    from prometheus_client import CollectorRegistry, start_http_server

    snapshot = snapshot_for(settings)
    snapshot.ensure_started()
    registry = CollectorRegistry()
    registry.register(TableCollector(settings, snapshot.table, snapshot, depths, default_pool))
    return start_http_server(port, addr=host, registry=registry)


@click.command()
@click.option(
    "--port",
    default=9808,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to serve /metrics on.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 in a container).",
)
@click.pass_obj
def metrics(obj: Any, port: int, host: str) -> int:
    """Serve Prometheus metrics of the failure table and the queues until stopped."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise click.UsageError(
            "rfqueue metrics needs prometheus_client: pip install 'rfqueue[metrics]'"
        ) from None
    settings: Settings = obj.settings
    settings.redis_client().ping()  # an unreachable Redis: one line from run_command
    try:
        server, thread = serve(settings, host, port, obj.broker_depths(), obj.default_pool)
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"fails: {exc.strerror}"
        raise click.BadParameter(f"port {port} on {host} {reason}", param_hint="'--port'") from None
    click.echo(
        f"serving metrics of table {settings.namespace!r} at {settings.safe_redis_url} "
        f"on http://{host}:{port}/metrics"
    )
    stop = threading.Event()
    with stop_on_signals(stop):
        stop.wait()
    server.shutdown()
    thread.join(5)
    return 0
