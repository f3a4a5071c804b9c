"""Fixtures shared by every test directory.

A private redis-server starts with the session, before any test module is imported:
``workers.app`` reads ``CELERY_BROKER_URL`` at import, and it must never see anything
but this server (never a shared Redis on 6379).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from signal import SIGTERM

import pytest

from rfqueue.demo.fleet import Fleet, RedisServer

REDIS_SERVER = pytest.StashKey[RedisServer]()

#: quick reflexes for tests; the defaults are for production
FAST = {
    "RFQUEUE_HEARTBEAT_INTERVAL": "0.5",
    "RFQUEUE_HEARTBEAT_TIMEOUT": "3",
    "RFQUEUE_REFRESH_INTERVAL": "0.5",
}


def require_binary(name: str) -> None:
    """Skip locally without ``name``; in CI (``CI`` set) a missing binary is a failure."""
    if shutil.which(name):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI but is not on PATH")
    pytest.skip(f"{name} not on PATH")


def stop_fleet(fleet: Fleet, timeout: float = 15.0) -> None:
    """Stop everything ``fleet`` started, as ``Fleet.stop`` does, but side by side.

    Each worker drains on SIGTERM (about half a second even when idle); stopped one
    after another, three workers added a second or two to every test's teardown.
    What is still alive after ``timeout`` is killed, as ``Fleet.stop`` would.
    """
    processes = [*fleet.others, *fleet.workers.values()]
    for process in processes:
        process.signal(SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
    fleet.stop()  # now only reaps each group (pool children) and closes the logs


def pytest_sessionstart(session: pytest.Session) -> None:
    if not shutil.which("redis-server"):
        return
    server = RedisServer().start()
    session.config.stash[REDIS_SERVER] = server
    os.environ["CELERY_BROKER_URL"] = server.url
    os.environ.pop("RFQUEUE_REDIS_URL", None)
    os.environ.update(FAST)


def pytest_sessionfinish(session: pytest.Session) -> None:
    server = session.config.stash.get(REDIS_SERVER, None)
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(request: pytest.FixtureRequest) -> RedisServer:
    """The session's private redis-server (skipped locally, failed in CI, without one)."""
    require_binary("redis-server")
    return request.config.stash[REDIS_SERVER]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what Celery's ``start_worker`` does to the process for its worker: the root
    logger's level (ERROR) and handler, which would hide later tests' warnings, and the
    current and default app."""
    from celery import _state

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    apps = (_state.default_app, getattr(_state._tls, "current_app", None))
    yield
    root.setLevel(level)
    root.handlers[:] = handlers
    _state.default_app, _state._tls.current_app = apps
