"""The failure table through Redis Sentinel: a master, a replica and a Sentinel of each test's own.

Every test here is marked ``integration``. Each one starts its servers on free loopback
ports in its own directory (see ``servers.py``) and stops them by pid afterwards; none
touches the session's Redis except as the Celery broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfqueue.connection import connect
from rfqueue.table import FailureTable
from rfqueue.table.replication import ReplicaAcks
from tests.conftest import require_binary
from tests.integration.conftest import redis_client  # noqa: F401  (the broker, flushed)
from tests.sentinel.servers import MASTER_NAME, SentinelCluster

#: the table's settings through Sentinel, as a deployment would set them
SOCKET_TIMEOUT = 2.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/sentinel/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    """A started master, replica and Sentinel; all three stopped after the test."""
    require_binary("redis-server")
    started = SentinelCluster(tmp_path / "sentinel-cluster")
    started.directory.mkdir()
    try:
        yield started.start()
    finally:
        started.stop()


def sentinel_env(cluster: SentinelCluster) -> dict[str, str]:
    """The environment pointing rfqueue (CLI, workers, producer) at the table through Sentinel."""
    return {"RFQUEUE_REDIS_URL": cluster.url, "RFQUEUE_SENTINEL_MASTER": MASTER_NAME}


def table_through_sentinel(cluster: SentinelCluster, replicas: int = 1) -> FailureTable:
    """A table on a Sentinel-managed client, its decisions confirmed by ``replicas``."""
    client = connect(
        cluster.url,
        sentinel_master=MASTER_NAME,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        decode_responses=True,
    )
    return FailureTable(client, "rfqueue", events_max=10_000, acks=ReplicaAcks(replicas, 0.5))


def rfqueue_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``rfqueue`` console script with ``env`` on top of this process's."""
    exe = Path(sys.executable).with_name("rfqueue")
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=30
    )
