"""Start and stop a local fleet: a private redis-server and plain Celery processes.

The demo, the benchmark and the test suite use these. Workers, beat and Flower run
the README's plain Celery commands (``celery -A APP worker --hostname NAME@%h``) for
the Celery app they are given. Every process is started in its own session and
stopped by its process id (SIGTERM, then SIGKILL), so nothing outlives its owner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import redis

#: the app a :class:`Fleet` runs unless told otherwise: the demo's, shipped with rfqueue
DEFAULT_APP = "rfqueue.demo.app"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; ``TimeoutError`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _celery_bin() -> str:
    local = Path(sys.executable).with_name("celery")
    return str(local) if local.exists() else "celery"


class ManagedProcess:
    """A child process in its own session, logging to a file, stopped by pid."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        # A restarted process appends to the same file: read only what this one wrote.
        self._log_start = self._log.tell()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(env or os.environ),
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """What this process has written to its log so far."""
        with open(self.log_path, "rb") as f:
            f.seek(self._log_start)
            return f.read().decode(errors="replace")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.pid, signum)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout``; returns the exit code."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group now."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def _reap_group(self) -> None:
        # Pool children left behind by a killed parent: take the whole group down.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a TLS redis-server: its certificate and key, and the CA that signed them."""

    cert: Path
    key: Path
    ca: Path


class RedisServer:
    """A private ``redis-server`` on a free loopback port, in its own directory.

    With ``tls`` it listens for TLS only, and :attr:`url` is a ``rediss://`` URL that
    verifies the server against ``tls.ca``.
    """

    def __init__(
        self,
        directory: Path | None = None,
        password: str | None = None,
        appendonly: bool = True,
        binary: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="rfqueue-redis-"))
        self.password = password
        self.tls = tls
        self.appendonly = appendonly
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            query = f"ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.tls.ca))}"
            return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
        ]
        if self.password:
            argv += ["--requirepass", self.password]
        if self.tls:  # TLS only: no plain port
            argv[argv.index("--port") + 1] = "0"
            argv += ["--tls-port", str(self.port), "--tls-auth-clients", "no"]
            argv += ["--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key)]
            argv += ["--tls-ca-cert-file", str(self.tls.ca)]
        self.process = ManagedProcess(argv, self.directory / "redis.log")
        wait_for(self._ping, timeout, what=f"redis-server on port {self.port}")
        return self

    def _ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2, **kwargs)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def celery_command(app: str, *command: str) -> list[str]:
    """``celery -A APP COMMAND...`` with this interpreter's ``celery``."""
    return [_celery_bin(), "-A", app, *command]


class Fleet:
    """Celery workers, beat and Flower of one Celery app, against one broker URL."""

    def __init__(
        self,
        broker_url: str,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        app: str = DEFAULT_APP,
    ) -> None:
        self.app = app
        self.broker_url = broker_url
        self.workdir = workdir
        self.cwd = cwd
        self.env = {**os.environ, "CELERY_BROKER_URL": broker_url, **(env or {})}
        self.env["CELERY_BEAT_SCHEDULE"] = str(workdir / "celerybeat-schedule")
        self.workers: dict[str, ManagedProcess] = {}
        self.others: list[ManagedProcess] = []

    def start_worker(
        self,
        name: str,
        *extra: str,
        env: Mapping[str, str] | None = None,
        wrap: Sequence[str] = (),
    ) -> ManagedProcess:
        """``celery -A APP worker --hostname NAME@%h`` plus ``extra``.

        ``wrap`` goes in front of the command, e.g. ``ip netns exec NS`` to run the
        worker on another network host; it must exec the command, so the pid stays
        the worker's own.
        """
        command = celery_command(
            self.app, "worker", "--hostname", f"{name}@%h", "--loglevel", "INFO"
        )
        argv = [*wrap, *command, *extra]
        proc = ManagedProcess(
            argv, self.workdir / f"worker-{name}.log", {**self.env, **(env or {})}, self.cwd
        )
        self.workers[name] = proc
        return proc

    def wait_ready(self, name: str, timeout: float = 30.0) -> None:
        """Wait until the worker logged that it is ready."""
        proc = self.workers[name]

        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"worker {name} exited:\n{proc.log()[-3000:]}")
            return " ready." in proc.log()

        wait_for(ready, timeout, interval=0.1, what=f"worker {name} to be ready")

    def start_beat(self, *extra: str, env: Mapping[str, str] | None = None) -> ManagedProcess:
        """``celery -A APP beat`` plus ``extra``."""
        argv = [*celery_command(self.app, "beat", "--loglevel", "INFO"), *extra]
        log = self.workdir / f"beat-{len(self.others)}.log"
        proc = ManagedProcess(argv, log, {**self.env, **(env or {})}, self.cwd)
        self.others.append(proc)
        return proc

    def start_flower(
        self, port: int, basic_auth: str | None = None, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        """``rfqueue flower -A APP`` (Flower with the Fleet page) on 127.0.0.1:``port``.

        ``basic_auth`` (``user:password``) goes through Flower's ``FLOWER_BASIC_AUTH``
        variable, the same as ``--basic-auth``, but not visible in the process list.
        """
        rfqueue = str(Path(sys.executable).with_name("rfqueue"))
        argv = [rfqueue, "flower", "-A", self.app, f"--port={port}", "--address=127.0.0.1"]
        auth = {"FLOWER_BASIC_AUTH": basic_auth} if basic_auth else {}
        log = self.workdir / f"flower-{len(self.others)}.log"
        proc = ManagedProcess(argv, log, {**self.env, **auth, **(env or {})}, self.cwd)
        self.others.append(proc)
        return proc

    def stop_worker(self, name: str) -> int | None:
        return self.workers.pop(name).stop()

    def stop(self) -> None:
        """Stop every process this fleet started."""
        for proc in [*self.others, *self.workers.values()]:
            proc.stop()
        self.others.clear()
        self.workers.clear()
