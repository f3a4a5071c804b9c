"""The rescuer's world (see test_rescue.World), shared by the worker tests that need one."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from rfqueue.brokers.redis import RedisBroker
from rfqueue.routing.policies.round_robin import RoundRobinPolicy
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import policy_chooser
from rfqueue.worker.rescue import Rescuer
from tests.unit.conftest import FakeClock
from tests.unit.kombu_fakes import kombu_broker
from tests.unit.worker.test_rescue import TIMEOUT, World


@pytest.fixture
def world(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, table: FailureTable, clock: FakeClock
) -> Iterator[World]:
    snapshot = Snapshot(table, refresh_interval=0.5, heartbeat_timeout=TIMEOUT)
    choose = policy_chooser(RoundRobinPolicy(Settings()))
    rescuer = Rescuer(snapshot, RedisBroker(client), choose, heartbeat_timeout=TIMEOUT)
    with kombu_broker(server) as broker:
        yield World(table, clock, snapshot, rescuer, broker, client)
