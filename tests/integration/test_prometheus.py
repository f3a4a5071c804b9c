"""A real Prometheus scrapes ``rfqueue metrics`` during a run: what it sees, and the dashboard.

Prometheus (Debian's package) scrapes the exporter every second and evaluates
deploy/prometheus/rules.yml; two real workers run the reference app. The test pauses
both with the CLI, sends tasks (spread over both queues: nobody is up), and checks
through Prometheus's HTTP API that the pause, the paused queues' depths and the age of
their waiting tasks are there, that the alert rules see it (pending), then resumes one
worker and sees the rescue.
Last, every query of the Grafana dashboard returns data from this run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rfqueue.demo.fleet import Fleet, RedisServer, free_port, wait_for
from tests.conftest import require_binary
from tests.integration.conftest import ROOT, active_queues, nodename, rfqueue_cli, wait_for_seqs
from tests.integration.test_metrics import start_metrics
from tests.prometheus import PrometheusServer, annotation_queries, dashboard_queries, value

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Any:
    """Start Prometheus on targets; stopped by pid at the end."""
    require_binary("prometheus")
    started: list[PrometheusServer] = []

    def start(*targets: str) -> PrometheusServer:
        server = PrometheusServer(tmp_path / "prometheus", targets)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def seen(prometheus: PrometheusServer, expr: str, what: str, timeout: float = 20) -> float:
    """Wait until ``expr`` has one sample in Prometheus; its value."""
    return wait_for(lambda: value(prometheus.query(expr)), timeout, interval=0.5, what=what)


def pending(prometheus: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == name]


def test_prometheus_sees_a_pause_its_stranded_tasks_and_the_rescue(
    fleet: Fleet, redis_server: RedisServer, app: Any, tmp_path: Path, prometheus_for: Any
):
    from workers.tasks import record

    # Given two workers, the exporter, and Prometheus scraping it every second
    for name in ("w1", "w2"):
        fleet.start_worker(name, "--concurrency", "1")
    exporter_port = free_port()
    exporter = start_metrics(redis_server.url, exporter_port, tmp_path / "metrics.log")
    try:
        prometheus = prometheus_for(f"127.0.0.1:{exporter_port}")
        began = time.time()
        for name in ("w1", "w2"):
            fleet.wait_ready(name)
        w1, w2 = nodename("w1"), nodename("w2")
        queue = f"rfqueue.{w1}"
        # And tasks routed by this process's router (its snapshot reports its age)
        for seq in range(10):
            record.delay(seq=seq)
        wait_for_seqs(redis_server.client(), set(range(10)), 30)
        up = 'count(rfqueue_worker_state{state="up"} == 1) == 2'
        assert seen(prometheus, up, "both workers up in Prometheus") == 2

        # When both workers are paused with the CLI, and six tasks are sent: with nobody
        # up, the router spreads them over both queues (no_worker_up=spread)
        for worker in (w1, w2):
            assert rfqueue_cli(redis_server, "pause", worker, "--for", "120").returncode == 0
        for worker in (w1, w2):
            wait_for(lambda w=worker: f"rfqueue.{w}" not in active_queues(redis_server, w), 20,
                     interval=0.5, what=f"{worker} to stop consuming")  # fmt: skip
        for seq in range(10, 16):
            record.delay(seq=seq)

        # Then Prometheus has the pause and the paused queues' depths
        paused = f'rfqueue_worker_state{{worker="{w1}", state="paused"}} == 1'
        assert seen(prometheus, paused, "w1 paused in Prometheus") == 1
        total = "sum(rfqueue_queue_depth) == 6"
        assert seen(prometheus, total, "a depth of 6 in Prometheus") == 6
        stranded = value(prometheus.query(f'rfqueue_queue_depth{{worker="{w1}"}}'))
        assert stranded and stranded == redis_server.client().llen(queue)
        # And the age of the task at the head of its queue grows
        oldest = f'rfqueue_queue_oldest_task_age_seconds{{worker="{w1}"}} >= 2'
        assert seen(prometheus, oldest, "the oldest task's age to reach 2 s") >= 2
        # And the rules see it: no worker up, a stranded queue (pending: their `for` runs)
        for alert in ("RfqueueNoWorkerUp", "RfqueueStrandedQueue"):
            firing = wait_for(lambda a=alert: pending(prometheus, a), 20, interval=0.5, what=alert)
            assert firing[0]["state"] == "pending", firing
        stranded_workers = {
            a["labels"]["worker"] for a in pending(prometheus, "RfqueueStrandedQueue")
        }
        assert w1 in stranded_workers

        # When w2 is resumed, then the rescue moves w1's tasks to it, and Prometheus sees it
        assert rfqueue_cli(redis_server, "resume", w2).returncode == 0
        wait_for_seqs(redis_server.client(), set(range(16)), 30)
        moved = f'rfqueue_tasks_rescued_from_total{{queue="{queue}"}}'
        assert wait_for(lambda: value(prometheus.query(moved)) == stranded, 20, interval=0.5,
                        what="w1's tasks rescued in Prometheus")  # fmt: skip
        latency = "rfqueue_rescue_latency_seconds_count >= 1"
        assert seen(prometheus, latency, "a rescue latency observation") >= 1
        empty = f'rfqueue_queue_depth{{worker="{w1}"}}'
        wait_for(lambda: value(prometheus.query(empty)) == 0, 20, interval=0.5, what="w1 empty")

        # And every dashboard query returns data from this run
        end = time.time()
        empty = [
            (title, legend)
            for title, legend, expr in dashboard_queries()
            if not prometheus.query_range(expr, began, end)
        ]
        assert empty == [], f"dashboard queries without data: {empty}"
        annotations = {n: prometheus.query_range(e, began, end) for n, e in
                       annotation_queries().items()}  # fmt: skip
        assert annotations["Pauses"], "no pause annotation"
        # And every rule evaluates without an error
        groups = prometheus.api("rules")["groups"]
        broken = [r["name"] for g in groups for r in g["rules"] if r["health"] != "ok"]
        loaded = [r["name"] for g in groups for r in g["rules"]]
        assert broken == [] and sorted(loaded) == sorted(rule_names()), groups
    finally:
        exporter.stop()


def rule_names() -> list[str]:
    """Every alert in deploy/prometheus/rules.yml."""
    document = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())
    return [rule["alert"] for group in document["groups"] for rule in group["rules"]]
