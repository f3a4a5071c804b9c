"""The fault suite: real redis-server, real workers, faults injected on purpose.

Every test here is marked ``faults`` (run alone with ``pytest -m faults``) and reuses
the integration fixtures. Each scenario prints one line: submitted, completed, lost,
completed twice, and the faults injected.
"""

from __future__ import annotations

import pytest

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


def scenario_line(
    name: str, submitted: int, completed: int, duplicates: int, faults: str
) -> str:
    """The one line each scenario prints."""
    line = (
        f"[{name}] submitted {submitted}, completed {completed}, "
        f"lost {submitted - completed}, completed twice {duplicates}; faults: {faults}"
    )
    print(line)
    return line
