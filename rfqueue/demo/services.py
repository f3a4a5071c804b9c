"""The demo's options and the processes it runs: Redis, workers, beat and Flower.

Every process is registered for stopping before it is started and its process id is
appended to the run folder's ``pids`` file at once, so an interrupted demo can always
stop it and a test can always check that it is gone.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import redis
from rich.console import Console

from rfqueue.demo.dashboard import say
from rfqueue.demo.embedded import NoRedisServer, embedded_server, server_version
from rfqueue.demo.fleet import Fleet, ManagedProcess, free_port, wait_for
from rfqueue.keys import Keys
from rfqueue.settings import Settings
from rfqueue.table.registry import stop_snapshots

NAMESPACE = "rfqueue-demo"
#: the Celery app the demo's workers, beat and Flower run: it ships with the package
DEMO_APP = "rfqueue.demo.app"
#: the workers' Celery queue besides their own: never the `celery` queue of a shared Redis
DEMO_QUEUE = "rfqueue-demo"
#: seconds each process gets for a clean stop before SIGKILL
STOP_TIMEOUT = 5.0


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the demo stopped everything it had started."""


class DemoError(Exception):
    """The demo cannot run: an unreachable Redis, a taken port, a worker that died."""


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs."""

    workers: int = 3
    rate: float = 200.0
    duration: float = 30.0
    seed: int | None = None
    chaos: bool = True
    chaos_interval: float = 2.0
    chaos_probability: float = 0.6
    pause_min: float = 2.0
    pause_max: float = 6.0
    max_paused: int = 1
    flower: bool = True
    flower_port: int | None = None
    run_dir: Path | None = None
    drain_timeout: float = 60.0

    def env(self) -> dict[str, str]:
        """The ``RFQUEUE_*`` settings every demo process gets."""
        env = {
            "RFQUEUE_NAMESPACE": NAMESPACE,
            "RFQUEUE_HEARTBEAT_INTERVAL": "0.5",
            "RFQUEUE_HEARTBEAT_TIMEOUT": "3",
            "RFQUEUE_REFRESH_INTERVAL": "0.5",
            "RFQUEUE_CHAOS_ENABLED": "true" if self.chaos else "false",
            "RFQUEUE_CHAOS_INTERVAL": str(self.chaos_interval),
            "RFQUEUE_CHAOS_PROBABILITY": str(self.chaos_probability),
            "RFQUEUE_CHAOS_MIN_DURATION": str(self.pause_min),
            "RFQUEUE_CHAOS_MAX_DURATION": str(self.pause_max),
            "RFQUEUE_MAX_PAUSED": str(self.max_paused),
        }
        if self.seed is not None:
            env["RFQUEUE_SEED"] = str(self.seed)
        return env

    def check(self) -> None:
        """Raise :class:`SettingsError` naming the first chaos setting rfqueue would refuse."""
        Settings.load({}, environ=self.env())

    def folder(self) -> Path:
        """The run folder: ``run_dir``, else a new ``runs/<timestamp>``."""
        if self.run_dir is not None:
            return self.run_dir
        base = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        folder, n = base, 1
        while folder.exists():
            folder, n = base.with_name(f"{base.name}-{n}"), n + 1
        return folder

    def describe(self, redis_label: str) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir) if self.run_dir else None
        data["redis"] = redis_label
        return data


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Services:
    """The processes of one demo run, and the Redis they share."""

    def __init__(self, options: DemoOptions, folder: Path, console: Console) -> None:
        self.options = options
        self.folder = folder
        self.console = console
        self.pids_file = folder / "pids"
        self._pids_mode = "w"  # a reused run folder starts a fresh list
        self.fleet: Fleet | None = None
        self.client: Any = None
        self.url = ""
        self.redis_label = ""
        self.worker_names: list[str] = []

    def record(self, process: ManagedProcess, role: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.pids_file.open(self._pids_mode) as f:
            f.write(f"{process.pid} {role}\n")
        self._pids_mode = "a"

    def use_redis(self, stack: ExitStack) -> None:
        """The Redis named in the environment, else a private one in a temporary directory."""
        url = os.environ.get("RFQUEUE_REDIS_URL") or os.environ.get("CELERY_BROKER_URL")
        if url:
            settings = Settings.load({}, environ={}, redis_url=url)
            self.redis_label = f"given {settings.safe_redis_url}"
        else:
            # The server's files live in a temporary directory, removed after it stopped.
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rfqueue-")))
            try:
                server = embedded_server(directory / "redis")
            except NoRedisServer as exc:
                raise DemoError(str(exc)) from None
            stack.callback(server.stop)
            server.start()
            assert server.process is not None
            self.record(server.process, "redis-server")
            url = server.url
            version = server_version(server.binary)
            self.redis_label = f"private redis-server {version} ({server.binary})"
            say(self.console, f"started a private redis-server {version} on port {server.port}")
        self.url = url
        self.client = Settings.load({}, environ={}, redis_url=url).redis_client()
        try:
            self.client.ping()
        except (redis.RedisError, OSError) as exc:
            safe = Settings.load({}, environ={}, redis_url=url).safe_redis_url
            raise DemoError(f"cannot reach Redis at {safe}: {exc}") from None

    def reset(self) -> None:
        """Remove only the demo's own keys: everything else in that Redis is left alone."""
        doomed = list(self.client.scan_iter(match=f"{{{NAMESPACE}}}:*", count=500))
        if doomed:
            self.client.delete(*doomed)

    def start_fleet(self, stack: ExitStack) -> None:
        self.fleet = Fleet(self.url, self.folder / "logs", env=self.env(), app=DEMO_APP)
        self.fleet.workdir.mkdir(parents=True, exist_ok=True)
        stack.callback(self.stop)
        for i in range(self.options.workers):
            name = f"demo{i + 1}"
            proc = self.fleet.start_worker(name, "--concurrency", "1", "-Q", DEMO_QUEUE)
            self.record(proc, f"worker {name}")

    def start_beat(self) -> None:
        """Beat, once the workers are up: its first ticks then have workers to route to."""
        assert self.fleet is not None
        if self.options.chaos:
            self.record(self.fleet.start_beat(), "beat")

    def env(self) -> dict[str, str]:
        return {**self.options.env(), "RFQUEUE_REDIS_URL": self.url}

    def start_flower(self) -> None:
        if find_spec("flower") is None:
            say(self.console, "no Flower: it is not installed (pip install 'rfqueue[flower]')")
            return
        assert self.fleet is not None
        port = self.options.flower_port or free_port()
        password = secrets.token_urlsafe(12)
        # Task events would cost the fleet about half its throughput on a small machine
        # (see the README): the demo's Flower shows workers, queues and rfqueue's state.
        proc = self.fleet.start_flower(
            port, f"admin:{password}", env={"FLOWER_ENABLE_EVENTS": "false"}
        )
        self.record(proc, "flower")
        say(
            self.console,
            f"Flower: http://127.0.0.1:{port}/workers, the Fleet page: "
            f"http://127.0.0.1:{port}/rfqueue (user admin, password {password})",
        )

    def wait_ready(self, tick: Callable[[], None], stop: threading.Event) -> None:
        """Wait for every worker to be ready, calling ``tick`` between looks."""
        assert self.fleet is not None
        fleet = self.fleet

        def ready() -> bool:
            if stop.is_set():
                raise Interrupted
            tick()
            for name, proc in fleet.workers.items():
                if not proc.alive():
                    raise DemoError(f"worker {name} exited; its log: {proc.log_path}")
            return all(" ready." in proc.log() for proc in fleet.workers.values())

        wait_for(ready, timeout=90, interval=0.5, what="the demo's workers to start")
        self.worker_names = sorted(_nodenames(self.client, self.options.workers))
        self.start_beat()

    def stop(self) -> None:
        """Stop every process at once: SIGTERM to all, then wait for each, SIGKILL if late."""
        if self.fleet is None:
            return
        procs = [*self.fleet.others, *self.fleet.workers.values()]
        for proc in procs:
            proc.signal(signal.SIGTERM)
        for proc in procs:
            proc.stop(STOP_TIMEOUT)
        self.fleet.others.clear()
        self.fleet.workers.clear()


def _nodenames(client: Any, expected: int) -> list[str]:
    """The workers' Celery node names (``demo1@host``), as they registered in the table."""

    def registered() -> list[str]:
        names = [str(n) for n in client.hkeys(Keys(NAMESPACE).workers)]
        return names if len(names) >= expected else []

    names: list[str] = wait_for(registered, timeout=10, what="the workers to register")
    return names


def start_services(
    options: DemoOptions, folder: Path, stack: ExitStack, console: Console, stop: threading.Event
) -> Services:
    """Redis, then workers, beat and Flower; everything is stopped when ``stack`` closes."""
    if options.flower and options.flower_port and not port_is_free(options.flower_port):
        raise DemoError(f"--flower-port: port {options.flower_port} is already in use")
    services = Services(options, folder, console)
    services.use_redis(stack)
    saved = dict(os.environ)
    stack.callback(_restore_environ, saved)
    # The producer runs in this process: its router must see the demo's Redis and namespace.
    os.environ.update({"CELERY_BROKER_URL": services.url, **services.env()})
    stack.callback(stop_snapshots)
    services.reset()
    services.start_fleet(stack)
    if options.flower:
        services.start_flower()
    return services


def _restore_environ(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)
