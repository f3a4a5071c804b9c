"""The compose services' other commands, run for real: the producer and Flower."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, free_port, wait_for
from tests.integration.conftest import ROOT, nodename, wait_for_seqs
from tests.reference import FLOWER_COMMAND
from workers.producer import PRODUCER_COMMAND

pytestmark = pytest.mark.integration


def test_producer_command_feeds_the_fleet(
    three_workers: Fleet, redis_server: RedisServer, redis_client: Any
):
    # Given three workers
    # When the compose producer's command runs for 2 s at 50 tasks/s
    argv = [sys.executable, *PRODUCER_COMMAND[1:], "--rate", "50", "--duration", "2"]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "CELERY_BROKER_URL": redis_server.url},
    )

    # Then it reports what it sent, and every task ran on one of the workers' own queues
    assert out.returncode == 0, out.stderr
    submitted = int(out.stdout.strip().splitlines()[-1].split()[-1])
    assert 95 <= submitted <= 100
    lines = wait_for_seqs(redis_client, set(range(submitted)), timeout=60)
    assert {line["worker"] for line in lines} == {nodename(n) for n in ("w1", "w2", "w3")}


def test_flower_shows_workers_and_rfqueue_state(
    three_workers: Fleet, redis_server: RedisServer, tmp_path: Path
):
    # Given Flower started with the compose command, behind basic auth
    port = free_port()
    argv = [
        str(Path(sys.executable).with_name(FLOWER_COMMAND[0])),
        *FLOWER_COMMAND[1:],
        f"--port={port}",
        "--address=127.0.0.1",
        "--basic-auth=admin:s3cret",
    ]
    flower = ManagedProcess(
        argv, tmp_path / "flower.log", {**os.environ, "CELERY_BROKER_URL": redis_server.url}, ROOT
    )
    try:
        # When the workers API is asked with credentials
        def workers() -> dict[str, Any] | None:
            try:
                data = _get(port, "/api/workers?refresh=1", "admin:s3cret")
            except OSError:
                return None
            return data if len(data) == 3 else None

        data = wait_for(workers, 30, interval=0.5, what="flower to list three workers")

        # Then it lists the three workers, and their stats carry rfqueue's view
        w1 = nodename("w1")
        assert set(data) == {nodename(n) for n in ("w1", "w2", "w3")}
        assert data[w1]["stats"]["rfqueue"]["state"] == "up"
        assert data[w1]["stats"]["rfqueue"]["queue"] == f"rfqueue.{w1}"
        # And without credentials it refuses
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(port, "/api/workers", None)
        assert refused.value.code == 401
    finally:
        flower.stop()


def _get(port: int, path: str, credentials: str | None) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials:
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
