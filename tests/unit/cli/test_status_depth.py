"""``rfqueue status`` shows the true depth of each worker's queue, priority lists included."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

import rfqueue.cli
from rfqueue.brokers.redis_layout import queue_lists
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from tests.unit.cli.test_cli import W1, W2, W3, fleet, no_broker, q, run

__all__ = ["fleet", "no_broker"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("use_fake_redis", "no_broker")


@pytest.fixture
def waiting(fleet: FailureTable) -> FailureTable:
    """W2 paused with 5 tasks waiting: 3 on its queue's list, 2 on a priority list."""
    fleet.pause(W2, 600, Reason.MANUAL)
    main, *priority = queue_lists(q(W2))
    fleet.client.lpush(main, "a", "b", "c")
    fleet.client.lpush(priority[1], "d", "e")
    return fleet


def test_json_has_each_queue_s_depth(waiting: FailureTable) -> None:
    doc = json.loads(run("status", "--json").output)
    assert {w["worker"]: w["depth"] for w in doc["workers"]} == {W1: 0, W2: 5, W3: 0}


def test_table_has_a_depth_column(waiting: FailureTable) -> None:
    lines = run("status").output.splitlines()
    header = next(line for line in lines if "worker" in line and "queue" in line)
    assert "depth" in header
    row = next(line for line in lines if W2 in line and "paused" in line)
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[cells.index(q(W2)) + 1] == "5"


def test_unreadable_depths_show_as_unknown(
    waiting: FailureTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(self: Any) -> Any:
        def read(queues: Any) -> dict[str, int]:
            raise redis.ConnectionError("broker gone")

        return read

    monkeypatch.setattr(rfqueue.cli.Context, "broker_depths", unreachable)
    result = run("status", "--json")
    assert result.exit_code == 0
    assert {w["depth"] for w in json.loads(result.output)["workers"]} == {None}
    row = next(line for line in run("status").output.splitlines() if W2 in line)
    assert "?" in row
