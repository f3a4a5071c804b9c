"""The handoff on a real redis-server: a message popped as Redis went away goes back once,
to the queue it was read from.

kombu consumes ``video``, bound to a named exchange (topic or direct), so a message's
routing key is not its queue. Redis "goes away" between kombu's BRPOP and its unacked
write: the write's pipeline fails before it is sent, or (a timeout) after it landed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
import redis
from celery import Celery
from kombu import Consumer, Exchange, Queue

from rfqueue.brokers.handoff import Handoff
from rfqueue.brokers.redis_layout import BrokerLayout
from rfqueue.demo.fleet import RedisServer

#: the key each kind of exchange routes ``video``'s message with (its binding in BINDINGS)
ROUTES = {"topic": "media.video", "direct": "media.video"}
BINDINGS = {"topic": "media.#", "direct": "media.video"}
REAL_EXECUTE = redis.client.Pipeline.execute


def refused(pipe: Any, *args: Any, **kwargs: Any) -> Any:
    raise redis.ConnectionError("Error 111 connecting to redis: Connection refused.")


def landed_then_timed_out(pipe: Any, *args: Any, **kwargs: Any) -> Any:
    REAL_EXECUTE(pipe, *args, **kwargs)
    raise redis.TimeoutError("Timeout reading from socket")


@contextlib.contextmanager
def video_queue(url: str, kind: str) -> Iterator[tuple[Any, Queue]]:
    """A kombu connection to ``url`` and ``video`` bound to a ``kind`` exchange, declared."""
    app = Celery("handoff", broker=url, set_as_current=False)
    exchange = Exchange("media", type=kind)
    queue = Queue("video", exchange, routing_key=BINDINGS[kind])
    with app.connection_for_read() as conn:
        queue(conn.default_channel).declare()
        yield conn, queue


def pop_as_redis_goes_away(
    handoff: Handoff, conn: Any, queue: Queue, write: Callable[..., Any]
) -> None:
    """kombu's consumer BRPOPs the message; its unacked write meets ``write``."""
    channel = conn.default_channel
    handoff.wrap(channel)
    received: list[Any] = []
    with Consumer(channel, [queue], callbacks=[lambda body, m: received.append(body)]):
        with (
            mock.patch.object(redis.client.Pipeline, "execute", autospec=True, side_effect=write),
            pytest.raises(redis.RedisError),
        ):
            conn.drain_events(timeout=5)
        channel.qos.restore_at_shutdown = False
    assert received == [] and len(handoff) == 1


@pytest.mark.parametrize("write", [refused, landed_then_timed_out])
@pytest.mark.parametrize("kind", sorted(ROUTES))
def test_a_held_message_goes_back_once_to_the_queue_it_was_read_from(
    redis_server: RedisServer, redis_client: Any, kind: str, write: Callable[..., Any]
) -> None:
    # Given a message published through a named exchange, waiting in `video`
    with video_queue(redis_server.url, kind) as (conn, queue):
        conn.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key=ROUTES[kind])
        assert redis_client.llen("video") == 1
        # When kombu pops it and Redis goes away around the unacked write
        handoff = Handoff()
        pop_as_redis_goes_away(handoff, conn, queue, write)
    # Then, Redis back, the handoff puts it back into `video` (where a consumer reads it),
    # and it is nowhere else: not under its routing key, not in the unacked hash
    assert handoff.put_back(redis_client, BrokerLayout()) == 1
    assert redis_client.llen("video") == 1
    assert not redis_client.exists(ROUTES[kind])
    assert redis_client.hlen("unacked") == 0 and redis_client.zcard("unacked_index") == 0
