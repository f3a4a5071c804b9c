"""Unacked messages of dead workers restored to other queues, and kombu's key layout.

Messages are published, taken and consumed by Celery and kombu themselves (kombu's Redis
transport on a fakeredis server, see kombu_fakes), so the unacked hash and index, the
JSON and the order are kombu's own.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import fakeredis
import pytest

from rfqueue.brokers.redis_layout import PRIORITY_SEP, BrokerLayout
from rfqueue.brokers.stranded import StrandedMessages
from tests.unit.kombu_fakes import (
    PREFIXED,
    SOURCE,
    A,
    B,
    Broker,
    broker_on,
    consuming_order,
    cycle,
    kombu_broker,
    messages_on,
    real_message,
    task_id,
)

broker = pytest.fixture(broker_on, name="broker")
messages = pytest.fixture(messages_on, name="messages")


# -- restore_unacked --------------------------------------------------------------------


def unacked(client: Any, layout: BrokerLayout | None = None) -> dict[str, Any]:
    layout = layout or BrokerLayout()
    return dict(client.hgetall(layout.prefix + layout.unacked))


def index(client: Any, layout: BrokerLayout | None = None) -> list[str]:
    layout = layout or BrokerLayout()
    return list(client.zrange(layout.prefix + layout.unacked_index, 0, -1))


def test_restore_puts_back_only_the_given_queues(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given a killed worker's 2 unacked tasks and 1 of a live worker
    broker.send(SOURCE, 2)
    broker.send(B, 1)
    dead = broker.take_unacked(SOURCE, 2)
    broker.take_unacked(B, 1)
    live_tag = next(tag for tag, raw in unacked(client).items() if json.loads(raw)[2] == B)
    # When the dead worker's queue is restored to A
    restored = messages.restore_unacked([SOURCE], lambda *_: A)
    # Then its tasks are waiting on A, gone from kombu's hash and index; B's is untouched
    assert restored == Counter({A: 2})
    assert sorted(broker.consume_ids(A)) == sorted(dead)
    assert list(unacked(client)) == [live_tag]
    assert index(client) == [live_tag]


def test_restored_messages_are_redelivered_and_addressed_to_the_target(
    broker: Broker, messages: StrandedMessages
) -> None:
    # Given a killed worker's unacked task
    broker.send(SOURCE, 1)
    [dead] = broker.take_unacked(SOURCE, 1)
    # When it is restored to A
    messages.restore_unacked([SOURCE], lambda *_: A)
    # Then A's consumer gets it marked redelivered, routed to A, through the anon exchange
    [message] = broker.consume(A)
    assert message.headers["id"] == dead
    assert message.headers["redelivered"] is True
    assert message.delivery_info["redelivered"] is True
    assert message.delivery_info["routing_key"] == A
    assert message.delivery_info["exchange"] == ""
    assert message.decode()[0] == [SOURCE, 0]


def test_restored_messages_keep_their_priority_and_run_first(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given a killed worker's tasks of priorities 0 and 7, and A's own backlog
    low = broker.send(SOURCE, 1)
    high = broker.send(SOURCE, 1, priority=7)
    backlog = broker.send(A, 1) + broker.send(A, 1, priority=7)
    broker.take_unacked(SOURCE, 2)
    # When they are restored to A
    messages.restore_unacked([SOURCE], lambda *_: A)
    # Then each is in A's list of its priority, ahead of the backlog there (as kombu restores)
    assert [task_id(r) for r in consuming_order(client, A)] == [low[0], backlog[0]]
    on_six = consuming_order(client, f"{A}{PRIORITY_SEP}6")
    assert [task_id(r) for r in on_six] == [high[0], backlog[1]]


def test_restore_follows_the_chooser(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given 4 unacked tasks of a killed worker
    broker.send(SOURCE, 4)
    dead = broker.take_unacked(SOURCE, 4)
    # When they are restored alternately to A and B
    restored = messages.restore_unacked([SOURCE], cycle(A, B))
    # Then each target got two, and every task is on exactly one of them
    assert restored == Counter({A: 2, B: 2})
    on_a, on_b = broker.consume_ids(A), broker.consume_ids(B)
    assert (len(on_a), len(on_b)) == (2, 2)
    assert sorted(on_a + on_b) == sorted(dead)
    assert unacked(client) == {} and index(client) == []


@pytest.mark.parametrize("change", ["ack", "rewrite"])
def test_an_entry_changed_after_the_scan_is_not_restored(
    broker: Broker, messages: StrandedMessages, client: Any, change: str
) -> None:
    # Given one unacked task of a killed worker
    broker.send(SOURCE, 1)
    broker.take_unacked(SOURCE, 1)
    [(tag, raw)] = unacked(client).items()
    rewritten = raw + " "

    def chooser_while_kombu_acts(*_: str) -> str:
        # Between the scan and the restore, kombu acks it (HDEL + ZREM) or writes it anew
        if change == "ack":
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)
        else:
            client.hset("unacked", tag, rewritten)
        return A

    # When the restore runs
    restored = messages.restore_unacked([SOURCE], chooser_while_kombu_acts)
    # Then nothing is pushed, and kombu's newer entry is left as it is
    assert restored == Counter()
    assert client.llen(A) == 0
    assert unacked(client) == ({} if change == "ack" else {tag: rewritten})


MALFORMED = [
    "not json",
    "{}",
    "42",
    "null",
    json.dumps(["only", "two"]),
    json.dumps(["message", "", SOURCE]),
    json.dumps([None, "", SOURCE]),
    json.dumps([{"properties": "not an object"}, "", SOURCE]),
    json.dumps([{"properties": {"delivery_info": "x"}}, "", [SOURCE]]),
    json.dumps([{"properties": None}, "", {"q": SOURCE}]),
    json.dumps([{"properties": None}, "", SOURCE]),
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_hash_values_are_skipped(
    broker: Broker, messages: StrandedMessages, client: Any, raw: str
) -> None:
    # Given a killed worker's unacked task and a malformed value in kombu's unacked hash
    broker.send(SOURCE, 1)
    [dead] = broker.take_unacked(SOURCE, 1)
    client.hset("unacked", "bad-tag", raw)
    client.zadd("unacked_index", {"bad-tag": 1.0})
    # When the dead worker's queue is restored
    restored = messages.restore_unacked({SOURCE}, lambda *_: A)
    # Then the good task is restored and the malformed value is left where it was
    assert restored == Counter({A: 1})
    assert broker.consume_ids(A) == [dead]
    assert unacked(client) == {"bad-tag": raw}
    assert index(client) == ["bad-tag"]


def test_restore_with_no_queue_reads_nothing(messages: StrandedMessages, client: Any) -> None:
    # Given unacked entries
    client.hset("unacked", "t", json.dumps([json.loads(real_message()), "", SOURCE]))
    # When restore is asked for no queue
    restored = messages.restore_unacked([], lambda *_: A)
    # Then nothing moves
    assert restored == Counter()
    assert client.hlen("unacked") == 1


def test_random_chooser_restores_every_entry_once(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given 12 unacked tasks of a killed worker and a seeded random chooser
    broker.send(SOURCE, 12)
    dead = broker.take_unacked(SOURCE, 12)
    rnd = random.Random(3)
    # When they are restored
    restored = messages.restore_unacked([SOURCE], lambda *_: rnd.choice([A, B]))
    # Then each is waiting on exactly one target and the counts say where
    on_a, on_b = broker.consume_ids(A), broker.consume_ids(B)
    assert restored == Counter({A: len(on_a), B: len(on_b)})
    assert sorted(on_a + on_b) == sorted(dead)


# -- layout ------------------------------------------------------------------------------


def test_layout_defaults_are_kombus() -> None:
    # Given no transport options
    # When the layout is built
    layout = BrokerLayout.from_transport_options(None)
    # Then it is kombu's default layout
    assert layout == BrokerLayout()
    assert layout.lists("q") == ["q", f"q{PRIORITY_SEP}3", f"q{PRIORITY_SEP}6", f"q{PRIORITY_SEP}9"]
    assert (layout.unacked, layout.unacked_index) == ("unacked", "unacked_index")


def test_layout_from_transport_options() -> None:
    # Given a key prefix, priority steps out of order, a separator and unacked key names
    options = dict(PREFIXED, priority_steps=[5, 0])
    # When the layout is built from them
    layout = BrokerLayout.from_transport_options(options)
    # Then every key carries the prefix and the steps are in consuming order
    assert layout == BrokerLayout("pfx:", (0, 5), ":", "my_unacked", "my_unacked_index")
    assert layout.lists("q") == ["pfx:q", "pfx:q:5"]


@pytest.mark.parametrize("options", [{}, PREFIXED])
def test_list_for_is_where_kombu_puts_a_priority(
    server: fakeredis.FakeServer, options: dict[str, Any]
) -> None:
    # Given kombu's channel and a layout built from the same transport options
    layout = BrokerLayout.from_transport_options(options)
    with kombu_broker(server, options) as b, b.app.connection_for_write() as conn:
        channel = conn.default_channel
        # When both place messages of every priority, and of priorities that are not numbers
        for priority in [*range(-2, 13), None, "7", "high", [1]]:
            message = {"properties": {"priority": priority}}
            pri = channel._get_message_priority(message, reverse=False)
            # Then they name the same list
            assert layout.list_for("q", priority) == layout.prefix + channel._q_for_pri("q", pri)


def test_prefixed_layout_moves_restores_and_counts_what_kombu_wrote(
    server: fakeredis.FakeServer, client: Any
) -> None:
    # Given a broker with a key prefix, its own steps, separator and unacked keys,
    # tasks waiting on the source and two taken by a worker that was then killed
    with kombu_broker(server, PREFIXED) as b:
        waiting = b.send(SOURCE, 2) + b.send(SOURCE, 2, priority=8)
        b.send(B, 3)
        killed = b.take_unacked(B, 2)
        messages = StrandedMessages(client, BrokerLayout.from_transport_options(PREFIXED))
        # When depths are read, the source moved and the killed worker's tasks restored
        depths = messages.depths([SOURCE, B])
        moved = messages.move(SOURCE, lambda *_: A)
        restored = messages.restore_unacked([B], lambda *_: A)
        # Then all of it was found under kombu's keys, and A's consumer gets every task
        assert depths == {SOURCE: 4, B: 1}
        assert (moved, restored) == (Counter({A: 4}), Counter({A: 2}))
        assert sorted(b.consume_ids(A)) == sorted(waiting + killed)
        assert client.hlen("pfx:my_unacked") == client.zcard("pfx:my_unacked_index") == 0
