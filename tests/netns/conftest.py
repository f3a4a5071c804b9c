"""Fixtures for tests across network hosts: Redis on one namespace, workers on others.

The test process stays in the root namespace, where none of the test network's
addresses exist. It reaches Redis through a unix socket that redis-server opens in a
temporary directory (a path, so it works across namespaces); the workers reach Redis
over the virtual network only, and lose it when their link is cut.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis

from rfqueue.demo.fleet import Fleet, ManagedProcess, wait_for
from tests.conftest import FAST, require_binary, stop_fleet
from tests.integration.conftest import ROOT
from tests.netns.hosts import Host, NetnsUnavailable, Network
from tests.reference import APP

#: the hosts of every test here: Redis on one, a worker on each of the others
HOSTS = ("redis", "w1", "w2", "w3")
#: redis-server's port on its host (reachable from this run's namespaces only)
REDIS_PORT = 6379


def skip_or_fail(reason: str) -> NoReturn:
    """Skip locally; in CI (``CI`` set) what the test needs must be there: fail."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


class HostRedis:
    """A redis-server on one network host, also listening on a unix socket for the test."""

    def __init__(self, host: Host, directory: Path) -> None:
        self.host = host
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """For the workers: over the test network."""
        return f"redis://{self.host.address}:{REDIS_PORT}/0"

    @property
    def socket_url(self) -> str:
        """For redis-py in the root namespace (the table, the ledger)."""
        return f"unix://{self.socket}"

    @property
    def broker_socket_url(self) -> str:
        """For kombu in the root namespace (a producer)."""
        return f"redis+socket://{self.socket}"

    def start(self, timeout: float = 10.0) -> HostRedis:
        argv = [
            *self.host.exec_prefix, shutil.which("redis-server") or "redis-server",
            "--port", str(REDIS_PORT), "--bind", self.host.address, "--protected-mode", "no",
            "--unixsocket", str(self.socket), "--unixsocketperm", "700",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.process = ManagedProcess(argv, self.directory / "redis.log")
        wait_for(self._ping, timeout, what=f"redis-server on {self.host.name}")
        return self

    def _ping(self) -> bool:
        if self.process is not None and not self.process.alive():
            raise RuntimeError(f"redis-server exited:\n{self.process.log()[-2000:]}")
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> Any:
        return redis.Redis.from_url(self.socket_url, decode_responses=True, socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@pytest.fixture
def network() -> Iterator[Network]:
    """The switch and the hosts; every namespace is deleted afterwards, pass or fail."""
    net = Network(HOSTS)
    try:
        net.create()
    except NetnsUnavailable as exc:
        skip_or_fail(f"cannot create network namespaces: {exc}")
    yield net
    net.remove()
    assert not net.leftovers(), net.leftovers()


@pytest.fixture
def host_redis(network: Network) -> Iterator[HostRedis]:
    """redis-server on the ``redis`` host, in a short temporary directory (socket paths
    are limited to 107 bytes), stopped by pid before the network goes."""
    require_binary("redis-server")
    directory = Path(tempfile.mkdtemp(prefix="rfq-netns-"))
    server = HostRedis(network.host("redis"), directory)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def host_fleet(network: Network, host_redis: HostRedis, tmp_path: Path) -> Iterator[Fleet]:
    """A started-nothing fleet against the ``redis`` host; workers go on other hosts.

    Afterwards every link comes back up first, so a worker that a test left cut off
    still stops cleanly, then every process is stopped by pid.
    """
    # The table too over the network, whatever this process's environment says.
    env = {**FAST, "RFQUEUE_REDIS_URL": host_redis.url}
    fleet = Fleet(host_redis.url, tmp_path, env=env, cwd=ROOT, app=APP)
    yield fleet
    network.restore_all()
    stop_fleet(fleet)
