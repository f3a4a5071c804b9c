"""RabbitMQ as the broker, the failure table still in Redis.

Each test gets a RabbitMQ virtual host of its own on the machine's RabbitMQ
(127.0.0.1:5672), made with ``rabbitmqctl`` and deleted afterwards, so nothing is left
behind and nothing else on that broker is touched. Locally the tests skip without
RabbitMQ; in CI (``CI`` set) a missing RabbitMQ is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer
from tests.conftest import FAST, stop_fleet
from tests.integration.conftest import LEDGER, ROOT, redis_client  # noqa: F401  (fixture)
from tests.reference import APP

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/amqp/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.amqp)


def require_rabbitmq() -> None:
    """Skip locally without a RabbitMQ and its ``rabbitmqctl``; fail in CI."""
    problem = None
    if not shutil.which("rabbitmqctl"):
        problem = "rabbitmqctl not on PATH"
    else:
        try:
            socket.create_connection((AMQP_HOST, AMQP_PORT), timeout=2).close()
        except OSError as exc:
            problem = f"no RabbitMQ on {AMQP_HOST}:{AMQP_PORT} ({exc})"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"RabbitMQ is required in CI: {problem}")
    pytest.skip(problem)


def rabbitmqctl(*args: str) -> None:
    out = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, f"rabbitmqctl {' '.join(args)}: {out.stderr}{out.stdout}"


def rabbitmqctl_output(*args: str) -> list[list[str]]:
    """Rows of a ``rabbitmqctl list_*`` command, without its header lines."""
    argv = ["rabbitmqctl", "-q", "--no-table-headers", *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return [line.split("\t") for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """``amqp://`` URL of a fresh virtual host for this test; deleted afterwards."""
    require_rabbitmq()
    vhost = f"rfqueue-test-{os.getpid()}-{secrets.token_hex(4)}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def amqp_fleet(amqp_url: str, redis_server: RedisServer, tmp_path: Path) -> Iterator[Fleet]:
    """Workers and beat on RabbitMQ; the table (and the tasks' ledger) in the private Redis."""
    env = {**FAST, "RFQUEUE_REDIS_URL": redis_server.url}
    fleet = Fleet(amqp_url, tmp_path, env=env, cwd=ROOT, app=APP)
    yield fleet
    stop_fleet(fleet)


def start_producer(
    fleet: Fleet,
    count: int,
    rate: float = 200,
    sleep: float = 0.0,
    ledger: str = LEDGER,
    policy: str | None = None,
) -> ManagedProcess:
    """The compose producer's command (``python -m workers.producer``) on the fleet's broker.

    ``policy`` routes its tasks with that policy (``RFQUEUE_POLICY``) instead of the
    default; the workers keep theirs.
    """
    argv = [sys.executable, "-m", "workers.producer", "--rate", str(rate), "--duration", "60"]
    argv += ["--count", str(count), "--sleep", str(sleep), "--ledger", ledger]
    env = {**fleet.env, **({"RFQUEUE_POLICY": policy} if policy else {})}
    return ManagedProcess(argv, fleet.workdir / "producer.log", env, ROOT)
