"""A Redis that accepts connections and never answers must not hang anyone."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from tests.integration.conftest import ROOT


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A loopback TCP server that accepts and reads, and never writes a byte back."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_cli_gives_up_on_a_hung_redis_with_one_line(black_hole: str) -> None:
    # Given a Redis URL that answers nothing, When `rfqueue status` runs
    exe = Path(sys.executable).with_name("rfqueue")
    started = time.monotonic()
    out = subprocess.run(
        [str(exe), "--redis-url", black_hole, "status"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    took = time.monotonic() - started
    # Then it fails with one line within a few seconds (socket_timeout is 2 s)
    assert out.returncode == 1, out
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert took < 10, took


def test_router_does_not_hang_on_a_hung_redis(black_hole: str) -> None:
    # Given a router whose table lives on a Redis that answers nothing
    router = Router(settings=Settings(redis_url=black_hole, socket_timeout=0.5))
    try:
        # When it routes its first task, and then a thousand more
        started = time.monotonic()
        first = router("tasks.add", (1, 2), {}, {})
        first_took = time.monotonic() - started
        started = time.monotonic()
        for _ in range(1000):
            router("tasks.add", (1, 2), {}, {})
        rest_took = time.monotonic() - started
    finally:
        router.snapshot.stop()
    # Then the first waits one socket timeout at most, fails open (Celery's default
    # route), and the others never wait on Redis at all
    assert first is None
    assert first_took < 0.5 * 2 + 1, first_took
    assert rest_took < 0.5, rest_took
