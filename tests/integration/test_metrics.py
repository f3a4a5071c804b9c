"""`rfqueue metrics`, for real: a paused worker's queue and state, as Prometheus scrapes them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rfqueue.brokers.redis_layout import queue_depths
from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, free_port, wait_for
from tests.conftest import FAST
from tests.integration.conftest import ROOT, active_queues, nodename, rfqueue_cli

pytestmark = pytest.mark.integration

RFQUEUE = str(Path(sys.executable).with_name("rfqueue"))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def start_metrics(url: str, port: int, log: Path) -> ManagedProcess:
    """The compose service's command: ``rfqueue metrics --port N``."""
    env = {**os.environ, **FAST, "RFQUEUE_REDIS_URL": url}
    proc = ManagedProcess([RFQUEUE, "metrics", "--port", str(port)], log, env, ROOT)
    wait_for(lambda: _get(port) is not None, 30, interval=0.2, what="the metrics endpoint")
    return proc


def _get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return None


def scrape(port: int) -> Samples:
    text = _get(port)
    assert text is not None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_during_a_pause_shows_the_paused_queue_and_worker(
    fleet: Fleet, redis_server: RedisServer, redis_client: Any, app: Any, tmp_path: Path
):
    # Given the only worker, w1, and the metrics endpoint
    fleet.start_worker("w1", "--concurrency", "1")
    fleet.wait_ready("w1")
    w1 = nodename("w1")
    queue = f"rfqueue.{w1}"
    port = free_port()
    exporter = start_metrics(redis_server.url, port, tmp_path / "metrics.log")
    try:
        # When w1 is paused and has stopped consuming its queue
        assert rfqueue_cli(redis_server, "pause", w1, "--for", "60").returncode == 0
        wait_for(lambda: queue not in active_queues(redis_server, w1), 20, interval=0.5,
                 what="w1 to stop consuming")  # fmt: skip
        # And five tasks are sent to its queue, one with a priority (kombu's extra list)
        from workers.tasks import record

        for seq in range(4):
            record.apply_async(kwargs={"seq": seq}, queue=queue)
        record.apply_async(kwargs={"seq": 4}, queue=queue, priority=9)

        # Then a scrape reports the paused queue's true depth, as Redis holds it
        depth_key = ("rfqueue_queue_depth", (("queue", queue), ("worker", w1)))
        samples = wait_for(lambda: (s := scrape(port))[depth_key] == 5 and s, 20, interval=0.2,
                           what="the depth to reach 5")  # fmt: skip
        assert queue_depths(redis_client, [queue]) == {queue: 5}
        assert redis_client.llen(queue) == 4  # what Flower and LLEN alone would say
        # And one paused worker, none up, and the manual pause counted
        assert samples[("rfqueue_workers", (("state", "paused"),))] == 1
        assert samples[("rfqueue_workers", (("state", "up"),))] == 0
        assert samples[("rfqueue_worker_state", (("state", "paused"), ("worker", w1)))] == 1
        assert samples[("rfqueue_pauses_total", (("reason", "manual"),))] == 1
        assert samples[("rfqueue_redis_up", ())] == 1

        # When the pause is lifted, then the queue drains and the scrape follows
        assert rfqueue_cli(redis_server, "resume", w1).returncode == 0
        wait_for(lambda: scrape(port)[depth_key] == 0, 30, interval=0.2, what="the queue to drain")
        samples = scrape(port)
        assert samples[("rfqueue_workers", (("state", "up"),))] == 1
        assert samples[("rfqueue_resumes_total", (("reason", "manual"),))] == 1
    finally:
        exporter.stop()


def test_the_endpoint_never_shows_the_redis_password(tmp_path: Path):
    # Given a Redis that wants a password, and the exporter pointed at it
    password = "pw-" + os.urandom(6).hex()
    server = RedisServer(tmp_path / "redis", password=password, appendonly=False)
    (tmp_path / "redis").mkdir()
    server.start()
    port = free_port()
    try:
        exporter = start_metrics(server.url, port, tmp_path / "metrics.log")
        try:
            # When it is scraped
            body = _get(port) or ""
        finally:
            exporter.stop()
        # Then it read the table, and neither the page nor its log holds the password
        assert "rfqueue_redis_up 1.0" in body
        assert 'redis="redis://:**@127.0.0.1:' in body
        assert password not in body
        assert password not in exporter.log() and "serving metrics" in exporter.log()
    finally:
        server.stop()


def test_a_taken_port_is_named(redis_server: RedisServer):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = rfqueue_cli(redis_server, "metrics", "--port", str(port))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port} on 127.0.0.1 is already in use" in lines[0], lines


def test_an_unreachable_redis_is_one_line_within_seconds():
    env = {**os.environ, "RFQUEUE_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    began = time.monotonic()
    out = subprocess.run([RFQUEUE, "metrics", "--port", str(free_port())], capture_output=True,
                         text=True, timeout=60, env=env)  # fmt: skip
    assert time.monotonic() - began < 15
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach" in lines[0], lines
    assert "hunter2" not in out.stdout + out.stderr
