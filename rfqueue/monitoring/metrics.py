"""Prometheus metrics: ``rfqueue metrics --port 9808`` serves what Flower cannot show.

A custom collector computes everything on each scrape from Redis: the true depth of
every registered worker's queue (paused ones included: Flower lists only consumed
queues), workers by state, pauses and resumes by reason, tasks routed per queue and
the age of this process's copy of the failure table; and for alerting (see
deploy/prometheus/rules.yml) the rescuers' work (rescue.py), each router's snapshot
age (routers.py), the age of each queue's oldest waiting task (oldest.py), workers per
pool and the chaos budget (fleet.py). Pauses and resumes are counted
from the table's capped event log as this exporter sees it: each event once, by its
version, so the counters only grow (from zero when the exporter starts; a Prometheus
counter reset). The Redis URL appears only with its password masked.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click
import redis

from rfqueue.brokers import RedisBroker
from rfqueue.brokers.redis_layout import queue_heads, redis_depth_reader
from rfqueue.console import stop_on_signals
from rfqueue.log import RateLimitedWarning
from rfqueue.monitoring.fleet import budget_families, pool_families
from rfqueue.monitoring.oldest import HeadReader, OldestTasks
from rfqueue.monitoring.rescue import rescue_families
from rfqueue.monitoring.routers import router_families
from rfqueue.settings import Settings
from rfqueue.table import Event, FailureTable
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.registry import snapshot_for
from rfqueue.table.snapshot import Snapshot

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from rfqueue.brokers.base import Broker, DepthReader

logger = logging.getLogger(__name__)

#: the command of the compose ``metrics`` service and the README
METRICS_COMMAND = ("rfqueue", "metrics")

#: event actions counted, and the counter each one feeds
COUNTED_ACTIONS = {"pause": "pauses", "resume": "resumes", "down": "downs"}
#: an ejection is a pause for this reason (outlier detection)
OUTLIER = "outlier"
#: a drain is any event that leaves a worker in this state
DRAINING = "draining"


class TableCollector:
    """A prometheus_client collector for one namespace's table and queues."""

    def __init__(
        self,
        settings: Settings,
        table: FailureTable,
        snapshot: Snapshot | None = None,
        depths: DepthReader | None = None,
        heads: HeadReader | None = None,
        default_pool: str = "celery",
    ):
        self.settings = settings
        #: the pool of workers whose pools are not known (the app's default queue)
        self.default_pool = default_pool
        self.table = table
        self.snapshot = snapshot
        #: the broker's depths (RabbitMQ, or another Redis); by default the table's Redis
        self.depths = depths or redis_depth_reader(table.client)
        #: the queues' next messages (a Redis broker's); by default the table's Redis
        self.oldest = OldestTasks(heads or (lambda queues: queue_heads(table.client, queues)))
        self._lock = threading.Lock()
        self._seen_version = 0
        self._actions: Counter[tuple[str, str]] = Counter()
        self._drains: Counter[str] = Counter()
        self._ejections: Counter[str] = Counter()
        self._worker_downs: Counter[str] = Counter()
        #: each worker's state after the last event counted
        self._states: dict[str, str] = {}
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
        now = self.table.now()
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
        yield from (depth, states, per_worker, routed)
        yield from self._event_counters(sorted(entries))
        yield _gauge("rfqueue_table_version", "Changes made to the failure table", version)
        yield from self._alerting_families(entries, depths, now)

    def _alerting_families(
        self, entries: dict[str, Entry], depths: dict[str, int], now: float
    ) -> Iterator[Metric]:
        """What the alert rules and the dashboard need besides the series above."""
        from prometheus_client.core import GaugeMetricFamily

        queues = [e.queue for e in entries.values()]
        oldest = GaugeMetricFamily(
            "rfqueue_queue_oldest_task_age_seconds",
            "Seconds the next task of a worker's queue has been seen waiting (0: empty)",
            labels=["queue", "worker"],
        )
        # Heads only of queues with tasks: a healthy fleet's scrape reads few.
        ages = self.oldest.ages([queue for queue in queues if depths.get(queue)])
        for name in sorted(entries):
            oldest.add_metric([entries[name].queue, name], ages.get(entries[name].queue, 0.0))
        yield oldest
        yield from pool_families(entries, now, self.default_pool)
        yield from budget_families(self.settings, entries, now, self.default_pool)
        yield from rescue_families(self.table.client, self.table.keys, queues)
        yield from router_families(self.table.client, self.table.keys, self.table.now())

    def _event_counters(self, workers: list[str]) -> Iterator[Metric]:
        events = self.table.events(self.settings.events_max)
        newest = max((e.version for e in events), default=0)
        if newest < self._seen_version:  # the table was reset: its versions start again
            self._seen_version = 0
        for event in sorted(events, key=lambda e: e.version):  # oldest first: transitions
            if event.version > self._seen_version:
                self._count(event)
        self._seen_version = max(self._seen_version, newest)
        # Every known reason and worker from zero: increase() misses a series' first value.
        reasons = [r.value for r in Reason]
        for action, name in COUNTED_ACTIONS.items():
            counts = {r: n for (a, r), n in self._actions.items() if a == action}
            yield _counter(f"rfqueue_{name}", f"Table events '{action}' seen, by reason",
                           "reason", {**dict.fromkeys(reasons, 0), **counts})  # fmt: skip
        yield _counter("rfqueue_drains", "Workers that began draining, by reason", "reason",
                       {**dict.fromkeys(reasons, 0), **self._drains})  # fmt: skip
        yield _counter("rfqueue_ejections", "Workers paused as outliers (ejected)", "worker",
                       {**dict.fromkeys(workers, 0), **self._ejections})  # fmt: skip
        yield _counter("rfqueue_worker_downs", "Times each worker was marked down", "worker",
                       {**dict.fromkeys(workers, 0), **self._worker_downs})  # fmt: skip

    def _count(self, event: Event) -> None:
        if event.action in COUNTED_ACTIONS:
            self._actions[(event.action, event.reason or "")] += 1
        if event.action == "down":
            self._worker_downs[event.worker] += 1
        if event.action == "pause" and event.reason == OUTLIER:
            self._ejections[event.worker] += 1
        # A drain is entering the state: a later event that leaves it draining is not one.
        if event.state == DRAINING and self._states.get(event.worker) != DRAINING:
            self._drains[event.reason or ""] += 1
        self._states[event.worker] = event.state or ""


def _counter(name: str, documentation: str, label: str, values: dict[str, float]) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


def _gauge(name: str, documentation: str, value: float) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    return GaugeMetricFamily(name, documentation, value=value)


def serve(
    settings: Settings,
    host: str,
    port: int,
    broker: Broker | None = None,
    default_pool: str = "celery",
) -> tuple[Any, Any]:
    """Start the HTTP server in a thread; returns prometheus_client's ``(server, thread)``.

    Depths and heads come from ``broker``; without one, from the table's Redis.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    snapshot = snapshot_for(settings)
    snapshot.ensure_started()
    depths, heads = broker_readers(broker)
    registry = CollectorRegistry()
    collector = TableCollector(settings, snapshot.table, snapshot, depths, heads, default_pool)
    registry.register(collector)
    return start_http_server(port, addr=host, registry=registry)


def broker_readers(broker: Broker | None) -> tuple[DepthReader | None, HeadReader | None]:
    """A broker's depth reader and, on Redis, its head reader (None: the table's Redis)."""
    if broker is None:
        return None, None
    if isinstance(broker, RedisBroker):
        client, lists = broker.client, broker.layout.lists
        return broker.depths, lambda queues: queue_heads(client, queues, lists)
    return broker.depths, lambda queues: {}  # no heads to read on this transport


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
        server, thread = serve(settings, host, port, obj.broker(), obj.default_pool)
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
