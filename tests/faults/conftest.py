"""The fault suite: real redis-server, real workers, faults injected on purpose.

Every test here is marked ``faults`` (run alone with ``pytest -m faults``) and reuses
the integration fixtures. Each scenario prints one line: submitted, completed, lost,
completed twice, and the faults injected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rfqueue.demo.fleet import RedisServer
from tests.conftest import require_binary
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    app,
    fleet,
    redis_client,
    three_workers,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


def scenario_line(name: str, submitted: int, completed: int, duplicates: int, faults: str) -> str:
    """The one line each scenario prints."""
    line = (
        f"[{name}] submitted {submitted}, completed {completed}, "
        f"lost {submitted - completed}, completed twice {duplicates}; faults: {faults}"
    )
    print(line)
    return line


@pytest.fixture
def start_redis(tmp_path: Any) -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (a password, TLS) in this test's directory; stop them after."""
    require_binary("redis-server")
    started: list[RedisServer] = []

    def start(name: str, **options: Any) -> RedisServer:
        directory = tmp_path / name
        directory.mkdir()
        started.append(RedisServer(directory, **options))
        return started[-1].start(timeout=30)

    yield start
    for server in started:
        server.stop()
