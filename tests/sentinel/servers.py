"""A Redis master, its replica and a Sentinel watching them, each a private process on loopback.

The master and the replica are plain :class:`rfqueue.demo.fleet.RedisServer` processes; the
replica follows the master by ``REPLICAOF``. The Sentinel is ``redis-server <conf>
--sentinel`` with its config file in its own directory (Sentinel rewrites it). Every
process is stopped by pid.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from rfqueue.demo.fleet import ManagedProcess, RedisServer, free_port, wait_for

MASTER_NAME = "tablemaster"
PASSWORD = "s3cret-sentinel-test"
#: how long Sentinel waits before it calls a silent master down (ms)
DOWN_AFTER_MS = 1000
#: Sentinel's failover timeout (ms); a failed attempt is retried after twice this
FAILOVER_TIMEOUT_MS = 2000


class SentinelServer:
    """One ``redis-server --sentinel`` on a free loopback port, monitoring one master."""

    def __init__(self, directory: Path, master_port: int, password: str | None = None) -> None:
        self.directory = directory
        self.master_port = master_port
        self.password = password
        self.port = free_port()
        self.process: ManagedProcess | None = None

    def _config(self) -> str:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.directory}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> SentinelServer:
        config = self.directory / "sentinel.conf"
        config.write_text(self._config())
        binary = shutil.which("redis-server") or "redis-server"
        argv = [binary, str(config), "--sentinel"]
        self.process = ManagedProcess(argv, self.directory / "sentinel.log")
        wait_for(self._ping, timeout, what=f"Sentinel on port {self.port}")
        return self

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis("127.0.0.1", self.port, decode_responses=True, socket_timeout=2)

    def master_port_now(self) -> int | None:
        """The port of the master this Sentinel gives clients now; None during a failover.

        As redis-py judges it (``SENTINEL MASTERS``, not down): ``get-master-addr-by-name``
        names the promoted replica some 50 ms before clients are given it.
        """
        state = self.client().sentinel_master(MASTER_NAME)
        if state["is_sdown"] or state["is_odown"] or not state["is_master"]:
            return None
        return int(state["port"])

    def knows_good_replica(self) -> bool:
        """Whether this Sentinel has found a replica it could promote."""
        replicas = self.client().sentinel_slaves(MASTER_NAME)
        return any(r["is_slave"] and not (r["is_sdown"] or r["is_odown"]) for r in replicas)

    def log(self) -> str:
        return self.process.log() if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@dataclass
class SentinelCluster:
    """A master, one replica and a Sentinel; :attr:`url` is the table's ``sentinel://`` URL."""

    directory: Path
    password: str | None = PASSWORD
    servers: list[RedisServer] = field(default_factory=list)
    sentinel: SentinelServer | None = None

    def start(self) -> SentinelCluster:
        master = self._redis("a")
        replica = self._redis("b")
        follow(replica, master)
        wait_for(lambda: in_sync(master), 10, what="the replica in sync")
        self.sentinel = SentinelServer(self._dir("sentinel"), master.port, self.password).start()
        sentinel = self.sentinel
        wait_for(sentinel.knows_good_replica, 15, interval=0.1, what="Sentinel to see the replica")
        return self

    def _dir(self, name: str) -> Path:
        path = self.directory / name
        path.mkdir(exist_ok=True)
        return path

    def _redis(self, name: str) -> RedisServer:
        server = RedisServer(self._dir(name), password=self.password).start()
        configure(server, self.password)
        self.servers.append(server)
        return server

    @property
    def url(self) -> str:
        assert self.sentinel is not None
        auth = f":{self.password}@" if self.password else ""
        return f"sentinel://{auth}127.0.0.1:{self.sentinel.port}/0"

    def master(self) -> RedisServer:
        """The server Sentinel names as master now."""
        assert self.sentinel is not None
        port = self.sentinel.master_port_now()
        return next(s for s in self.servers if s.port == port)

    def replica(self) -> RedisServer:
        """The first server that is not the master."""
        master = self.master()
        return next(s for s in self.servers if s is not master)

    def kill_master(self) -> RedisServer:
        """``kill -9`` the master now; returns it (stopped, for :meth:`rejoin`)."""
        master = self.master()
        assert master.process is not None
        master.process.kill()
        master.stop()  # already dead: this only closes its log
        return master

    def rejoin(self, server: RedisServer) -> None:
        """Start a dead server again on its port and files, as a replica of the master now.

        Sentinel would send it ``REPLICAOF`` itself once it sees it; doing it at once
        keeps the test short. Until it has synced it may hold writes the others never saw.
        """
        master = self.master()
        server.start()
        configure(server, self.password)
        follow(server, master)
        wait_for(lambda: in_sync(master), 15, what="the old master to sync as a replica")

    def stop(self) -> None:
        if self.sentinel is not None:
            self.sentinel.stop()
        for server in self.servers:
            server.stop()


def configure(server: RedisServer, password: str | None) -> None:
    """What a server of the cluster needs besides RedisServer's defaults."""
    client = server.client()
    # A replica's first sync starts at once, not after Redis's default 5 s wait for others.
    client.config_set("repl-diskless-sync-delay", 0)
    if password:  # for the day it follows another master
        client.config_set("masterauth", password)


def follow(replica: RedisServer, master: RedisServer) -> None:
    """Make ``replica`` a replica of ``master``, as Sentinel would."""
    replica.client().replicaof("127.0.0.1", master.port)


def in_sync(master: RedisServer) -> bool:
    """Whether the master has a replica online: its first sync is done, it follows the stream.

    (Not "at the same offset": under a stream of writes a replica reports its offset
    once a second, so equal offsets may never be seen.)
    """
    info: dict[str, Any] = master.client().info("replication")
    replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return any(r.get("state") == "online" for r in replicas)


def wait_for_failover(cluster: SentinelCluster, old: RedisServer, timeout: float = 20.0) -> float:
    """Wait until Sentinel names a master other than ``old``; returns how long that took (s)."""
    sentinel = cluster.sentinel
    assert sentinel is not None
    start = time.monotonic()
    wait_for(
        lambda: sentinel.master_port_now() not in (None, old.port),
        timeout,
        interval=0.05,
        what="Sentinel to promote the replica",
    )
    return time.monotonic() - start
