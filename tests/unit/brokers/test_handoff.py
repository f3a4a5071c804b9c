"""The handoff: a message popped as Redis went away is held, then pushed back to its queue.

Everything runs on kombu's real Redis transport (pointed at a fakeredis server): the
channel, its QoS, the messages and the consumer that proves where a message went back.
The moment Redis goes away between kombu's pop and its unacked write is made by
failing the pipeline that ``QoS.append`` executes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest import mock

import fakeredis
import pytest
import redis
from kombu.utils.json import dumps as kombu_dumps

from rfqueue.brokers.handoff import Handoff
from rfqueue.brokers.redis_layout import BrokerLayout
from tests.unit.kombu_fakes import PREFIXED, Broker, broker_on, kombu_broker

QUEUE, OTHER = "rfqueue.w1@h", "rfqueue.w2@h"
GONE = "Error 111 connecting to redis: Connection refused."
REDELIVERED = ', "redelivered": true'


broker = pytest.fixture(broker_on, name="broker")


@pytest.fixture
def handoff() -> Handoff:
    return Handoff()


@contextlib.contextmanager
def kombu_channel(broker: Broker) -> Iterator[Any]:
    """A consuming channel of kombu's Redis transport; it restores nothing when closed."""
    with broker.app.connection_for_read() as conn:
        channel = conn.default_channel
        try:
            yield channel
        finally:
            channel.qos.restore_at_shutdown = False


@contextlib.contextmanager
def redis_goes_away(error: redis.RedisError | None = None) -> Iterator[redis.RedisError]:
    """Every Redis pipeline fails with ``error``, by default as on a lost connection.

    A single command such as kombu's RPOP still works: Redis goes away in between.
    """
    error = error or redis.ConnectionError(GONE)
    with mock.patch.object(redis.client.Pipeline, "execute", side_effect=error):
        yield error


def pop_as_redis_goes_away(channel: Any, queue: str) -> None:
    """kombu pops the next message of ``queue`` and Redis goes away before the unacked write.

    kombu sees the very error of the lost connection, raised through any wrapper.
    """
    with redis_goes_away() as error, pytest.raises(redis.ConnectionError) as raised:
        channel.basic_get(queue, no_ack=False)
    assert raised.value is error


def hold(handoff: Handoff, channel: Any, queue: str) -> str:
    """kombu pops the next message of ``queue`` while Redis goes away; its raw JSON."""
    raw = channel.client.lindex(channel._q_for_pri(queue, 0), -1)
    raw = raw.decode() if isinstance(raw, bytes) else raw
    handoff.wrap(channel)
    pop_as_redis_goes_away(channel, queue)
    return str(raw)


def fail_to_put_back(handoff: Handoff, server: fakeredis.FakeServer, client: Any) -> None:
    """The handoff puts back while Redis is still away, which fails; then Redis comes back."""
    server.connected = False
    with pytest.raises(redis.ConnectionError):
        handoff.put_back(client, BrokerLayout())
    server.connected = True


def ids(messages: list[Any]) -> list[str]:
    return [m.headers["id"] for m in messages]


def unacked_tags(client: Any) -> list[str]:
    return sorted(client.hkeys("unacked"))


# -- wrap --------------------------------------------------------------------------------


def test_a_recorded_delivery_goes_through_unchanged_and_holds_nothing(
    broker: Broker, handoff: Handoff, client: Any
) -> None:
    # Given a task waiting and a wrapped kombu channel
    [task] = broker.send(QUEUE, 1)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        # When kombu takes it without acking
        message = channel.basic_get(QUEUE, no_ack=False)
        # Then kombu recorded it as unacknowledged, exactly as unwrapped, and nothing is held
        assert message.headers["id"] == task
        info = message.delivery_info
        entry = client.hget("unacked", message.delivery_tag)
        assert entry == kombu_dumps([message._raw, info["exchange"], info["routing_key"]])
        assert client.zrange("unacked_index", 0, -1) == [message.delivery_tag]
        assert message.delivery_tag in channel.qos._delivered
        assert len(handoff) == 0


def test_a_delivery_that_cannot_be_recorded_raises_and_is_held(
    broker: Broker, handoff: Handoff, client: Any
) -> None:
    # Given a task waiting and a wrapped kombu channel
    broker.send(QUEUE, 1)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        # When kombu pops it and Redis goes away before the unacked write
        with redis_goes_away() as error, pytest.raises(redis.ConnectionError) as raised:
            channel.basic_get(QUEUE, no_ack=False)
        # Then kombu sees the very same error, and only the handoff has the message
        assert raised.value is error
        assert len(handoff) == 1
        assert client.llen(QUEUE) == 0
        assert unacked_tags(client) == []
        assert channel.qos._delivered == {}


def test_a_delivery_cut_off_by_a_redis_timeout_is_held_too(
    broker: Broker, handoff: Handoff
) -> None:
    # Given a task waiting and a wrapped kombu channel
    broker.send(QUEUE, 1)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        # When the unacked write times out (Redis hangs rather than refuses)
        timeout = redis.TimeoutError("Timeout reading from socket")
        with redis_goes_away(timeout), pytest.raises(redis.TimeoutError):
            channel.basic_get(QUEUE, no_ack=False)
        # Then the handoff holds it (kombu counts a timeout as a lost connection)
        assert len(handoff) == 1


def test_wrapping_a_channel_twice_wraps_it_once(broker: Broker, handoff: Handoff) -> None:
    # Given a task waiting and a channel wrapped once
    broker.send(QUEUE, 1)
    with kombu_channel(broker) as channel:
        handoff.wrap(channel)
        wrapped = channel.qos.append
        # When it is wrapped again (the consumer restarts on the same channel)
        handoff.wrap(channel)
        # Then append is the first wrapper, and a failed delivery is held once
        assert channel.qos.append is wrapped
        pop_as_redis_goes_away(channel, QUEUE)
        assert len(handoff) == 1


def test_a_new_channel_after_a_reconnect_is_wrapped_too(broker: Broker, handoff: Handoff) -> None:
    # Given a first channel wrapped, and a task waiting
    broker.send(QUEUE, 1)
    with kombu_channel(broker) as first:
        handoff.wrap(first)
    # When the consumer reconnects on a new channel, wrapped in turn
    with kombu_channel(broker) as second:
        handoff.wrap(second)
        pop_as_redis_goes_away(second, QUEUE)
    # Then the message it could not record is held
    assert len(handoff) == 1


@pytest.mark.parametrize(
    "channel",
    [SimpleNamespace(), SimpleNamespace(qos=None), SimpleNamespace(qos=SimpleNamespace())],
    ids=["no qos", "qos None", "qos without append"],
)
def test_a_channel_without_a_qos_is_left_alone(handoff: Handoff, channel: Any) -> None:
    # Given a channel that has no QoS to wrap (another transport, or not set up)
    before = dict(vars(channel))
    # When it is wrapped
    handoff.wrap(channel)
    # Then nothing is raised or changed
    assert vars(channel) == before
    assert len(handoff) == 0


# -- put_back ----------------------------------------------------------------------------


def test_put_back_with_nothing_held_writes_nothing(handoff: Handoff, client: Any) -> None:
    # Given an empty handoff
    # When it puts back
    count = handoff.put_back(client, BrokerLayout())
    # Then it did nothing
    assert count == 0
    assert client.keys("*") == []


def test_a_held_message_goes_back_to_be_consumed_next(
    broker: Broker, handoff: Handoff, client: Any
) -> None:
    # Given a task held as Redis went away, and two tasks queued behind it
    [held_id, *backlog] = broker.send(QUEUE, 3)
    with kombu_channel(broker) as channel:
        original = hold(handoff, channel, QUEUE)
    # When Redis is back and the handoff puts it back
    count = handoff.put_back(client, BrokerLayout())
    # Then it is the first message kombu hands out, marked redelivered, and nothing is held
    assert count == 1
    assert len(handoff) == 0
    pushed = client.lindex(QUEUE, -1)
    [first, *rest] = broker.consume(QUEUE)
    assert first.headers["id"] == held_id
    assert first.headers["redelivered"] is True
    assert ids(rest) == backlog
    # and its bytes are the original ones but for that mark, in headers and delivery_info
    # (as kombu marks a message it restores)
    assert pushed.count(REDELIVERED) == 2
    assert pushed.replace(REDELIVERED, "") == original
    assert REDELIVERED not in original


@pytest.mark.parametrize("options", [{}, PREFIXED], ids=["default", "prefixed"])
def test_a_held_message_goes_back_to_the_list_of_its_priority(
    server: fakeredis.FakeServer, handoff: Handoff, client: Any, options: dict[str, Any]
) -> None:
    # Given a priority-7 task held as Redis went away, with a priority-7 backlog behind it
    layout = BrokerLayout.from_transport_options(options)
    with kombu_broker(server, options) as b:
        [held_id, *backlog] = b.send(QUEUE, 3, priority=7)
        with kombu_channel(b) as channel:
            handoff.wrap(channel)
            pop_as_redis_goes_away(channel, QUEUE)
        # When it is put back
        handoff.put_back(client, layout)
        # Then it waits in its priority's list, under the broker's prefix, consumed first
        key = layout.list_for(QUEUE, 7)
        assert key != layout.prefix + QUEUE
        assert client.llen(key) == 3
        assert json.loads(client.lindex(key, -1))["headers"]["id"] == held_id
        assert b.consume_ids(QUEUE) == [held_id, *backlog]


def test_held_messages_go_back_each_to_its_own_queue(
    broker: Broker, handoff: Handoff, client: Any
) -> None:
    # Given one task held from each of two queues
    [on_queue] = broker.send(QUEUE, 1)
    [on_other] = broker.send(OTHER, 1)
    with kombu_channel(broker) as channel:
        hold(handoff, channel, QUEUE)
        hold(handoff, channel, OTHER)
    # When they are put back
    count = handoff.put_back(client, BrokerLayout())
    # Then each waits in the queue it was taken from
    assert count == 2
    assert broker.consume_ids(QUEUE) == [on_queue]
    assert broker.consume_ids(OTHER) == [on_other]


def test_held_messages_go_back_in_the_order_they_were_taken(
    broker: Broker, handoff: Handoff, client: Any
) -> None:
    # Given three tasks taken in turn as Redis went away, and one more queued behind them
    sent = broker.send(QUEUE, 4)
    with kombu_channel(broker) as channel:
        for _ in range(3):
            hold(handoff, channel, QUEUE)
    # When they are put back
    handoff.put_back(client, BrokerLayout())
    # Then kombu hands them out in the order they were first taken, ahead of the backlog
    assert broker.consume_ids(QUEUE) == sent


def test_a_failed_put_back_keeps_every_message_for_the_next_attempt(
    broker: Broker, handoff: Handoff, server: fakeredis.FakeServer, client: Any
) -> None:
    # Given two tasks held as Redis went away
    sent = broker.send(QUEUE, 2)
    with kombu_channel(broker) as channel:
        for _ in range(2):
            hold(handoff, channel, QUEUE)
    # When the put back fails because Redis is still away
    fail_to_put_back(handoff, server, client)
    # Then both are still held and nothing was written
    assert len(handoff) == 2
    assert client.llen(QUEUE) == 0
    # and the next attempt puts both back, each once
    assert handoff.put_back(client, BrokerLayout()) == 2
    assert len(handoff) == 0
    assert sorted(broker.consume_ids(QUEUE)) == sorted(sent)


def test_a_message_held_after_a_failed_put_back_goes_back_after_the_older_ones(
    broker: Broker, handoff: Handoff, server: fakeredis.FakeServer, client: Any
) -> None:
    # Given a task held, a put back that failed, then a second task held
    sent = broker.send(QUEUE, 2)
    with kombu_channel(broker) as channel:
        hold(handoff, channel, QUEUE)
        fail_to_put_back(handoff, server, client)
        hold(handoff, channel, QUEUE)
    # When the put back succeeds
    assert handoff.put_back(client, BrokerLayout()) == 2
    # Then the older one is handed out first, each once, marked redelivered once
    messages = broker.consume(QUEUE)
    assert ids(messages) == sent
    assert all(m.headers["redelivered"] is True for m in messages)
