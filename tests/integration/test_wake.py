"""CLIENT UNBLOCK ends a worker's blocked read at once (real redis-server, no Celery)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from rfqueue.brokers.wake import blocked_read_address, wake_blocked_read
from rfqueue.demo.fleet import RedisServer

pytestmark = pytest.mark.integration


def consumer_blocked_on(connection: Any) -> Any:
    """The shape of a Celery consumer whose kombu channel is blocked in ``connection``."""
    channel = SimpleNamespace(_in_poll=connection)
    return SimpleNamespace(task_consumer=SimpleNamespace(channel=channel))


def test_a_blocked_brpop_ends_at_once(redis_server: RedisServer, redis_client: Any) -> None:
    # Given a connection blocked in a BRPOP that would wait 10 s, as kombu's read does
    reader = redis.Redis.from_url(redis_server.url)
    connection = reader.connection_pool.get_connection()
    connection.send_command("BRPOP", "rfqueue.w1@h", 10)
    consumer = consumer_blocked_on(connection)
    assert blocked_read_address(consumer) is not None
    try:
        # When rfqueue wakes it
        started = time.monotonic()
        assert wake_blocked_read(consumer, redis_client)
        # Then the read returns now, empty, as after a timeout
        assert connection.read_response() is None
        assert time.monotonic() - started < 1.0
    finally:
        reader.connection_pool.release(connection)
        reader.close()


def test_nothing_to_wake_is_harmless(redis_client: Any) -> None:
    # A consumer that is not blocked in a read (or not on Redis) is left alone
    assert not wake_blocked_read(consumer_blocked_on(None), redis_client)
    assert not wake_blocked_read(SimpleNamespace(task_consumer=None), redis_client)
