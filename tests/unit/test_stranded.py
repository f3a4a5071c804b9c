"""Stranded messages: moves and restores on kombu's Redis layout, with real kombu messages.

Messages are published and consumed by Celery and kombu themselves (kombu's Redis
transport on a fakeredis server), so the layout, the JSON and the order are kombu's own.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any
from unittest import mock

import fakeredis
import pytest
import redis
from celery import Celery
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu.message import Message
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps as kombu_dumps

import rfqueue.stranded
from rfqueue.depth import PRIORITY_SEP
from rfqueue.stranded import MOVE_BATCH, BrokerLayout, StrandedMessages

SOURCE, A, B = "rfqueue.w1@h", "rfqueue.w2@h", "rfqueue.w3@h"
TASK = "workers.tasks.record"
PREFIXED = {
    "global_keyprefix": "pfx:",
    "priority_steps": [0, 5],
    "sep": ":",
    "unacked_key": "my_unacked",
    "unacked_index_key": "my_unacked_index",
}


# -- kombu on fakeredis ------------------------------------------------------------------


class Broker:
    """A Celery app whose kombu Redis transport talks to a fakeredis server."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, queue: str, count: int, priority: int | None = None) -> list[str]:
        """Publish ``count`` tasks to ``queue`` as Celery does; their ids, oldest first."""
        ids = []
        with self.app.producer_or_acquire() as producer:
            for n in range(count):
                result = self.app.send_task(
                    TASK, args=(queue, n), queue=queue, priority=priority, producer=producer
                )
                ids.append(result.id)
        return ids

    def consume(self, queue: str) -> list[Message]:
        """Everything a consumer of ``queue`` gets, in kombu's order, acknowledged."""
        out = []
        with self.app.connection_for_read() as conn:
            channel = conn.default_channel
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                out.append(message)
        return out

    def consume_ids(self, queue: str) -> list[str]:
        return [m.headers["id"] for m in self.consume(queue)]

    def take_unacked(self, queue: str, count: int) -> list[str]:
        """A worker takes ``count`` messages and holds them, unacknowledged, for good.

        kombu records them in its unacked hash and index, as for a worker still running
        them or one killed before it could ack: such a process never hands them back, so
        the channel's restore at shutdown is switched off.
        """
        with self.app.connection_for_read() as conn:
            channel = conn.default_channel
            taken = [channel.basic_get(queue, no_ack=False) for _ in range(count)]
            channel.qos.restore_at_shutdown = False
        assert all(m is not None for m in taken), "fewer messages waiting than taken"
        return [m.headers["id"] for m in taken]


@contextlib.contextmanager
def kombu_broker(
    server: fakeredis.FakeServer, transport_options: dict[str, Any] | None = None
) -> Iterator[Broker]:
    """kombu's real Redis transport, with its connection pool pointed at ``server``."""

    def fake_pool(channel: Any, asynchronous: bool = False) -> redis.ConnectionPool:
        return redis.ConnectionPool(connection_class=fakeredis.FakeConnection, server=server)

    # kombu keeps producer pools per broker URL, process-wide: one URL per fake server.
    url = f"redis://fake-{uuid.uuid4().hex}:6379/0"
    with mock.patch.object(kombu_redis.Channel, "_get_pool", fake_pool):
        app = Celery("rfqueue-test", broker=url, set_as_current=False)
        app.conf.broker_transport_options = dict(transport_options or {})
        try:
            yield Broker(app)
        finally:
            app.close()


@pytest.fixture
def broker(server: fakeredis.FakeServer) -> Iterator[Broker]:
    with kombu_broker(server) as b:
        yield b


@pytest.fixture
def messages(client: fakeredis.FakeRedis) -> StrandedMessages:
    return StrandedMessages(client)


@cache
def real_message() -> str:
    """One message exactly as kombu wrote it to Redis for ``Celery.send_task``."""
    server = fakeredis.FakeServer()
    with kombu_broker(server) as b:
        b.send(SOURCE, 1)
    raw = fakeredis.FakeRedis(server=server, decode_responses=True).lpop(SOURCE)
    assert isinstance(raw, str)
    assert kombu_dumps(json.loads(raw)) == raw  # so a copy below is what kombu would write
    return raw


def kombu_messages(queue: str, count: int, priority: int = 0) -> list[str]:
    """``count`` new tasks for ``queue``, written as kombu writes them (copies of a real one)."""
    out = []
    for _ in range(count):
        message = json.loads(real_message())
        task_id = str(uuid.uuid4())
        message["headers"].update(id=task_id, root_id=task_id)
        properties = message["properties"]
        properties.update(correlation_id=task_id, priority=priority)
        properties["delivery_tag"] = str(uuid.uuid4())
        properties["delivery_info"]["routing_key"] = queue
        out.append(kombu_dumps(message))
    return out


def task_id(raw: str) -> str:
    return str(json.loads(raw)["headers"]["id"])


def consuming_order(client: Any, key: str) -> list[str]:
    """The raw messages of one list, in the order kombu's RPOP hands them out."""
    return list(reversed(client.lrange(key, 0, -1)))


def push(client: Any, key: str, raws: Sequence[str]) -> None:
    """Publish in this order, as kombu does (LPUSH)."""
    for raw in raws:
        client.lpush(key, raw)


def cycle(*queues: str) -> Callable[[], str]:
    turn = iter(range(10**9))
    return lambda: queues[next(turn) % len(queues)]


def same_except_routing_key(moved: str, original: str, old: str, new: str) -> bool:
    """``moved`` is ``original`` byte for byte, but for its delivery_info routing key."""
    data = json.loads(moved)
    if data["properties"]["delivery_info"]["routing_key"] != new:
        return False
    old_key, new_key = f'"routing_key": {json.dumps(old)}', f'"routing_key": {json.dumps(new)}'
    return moved.count(new_key) == 1 and moved.replace(new_key, old_key) == original


# -- move ------------------------------------------------------------------------------


def test_move_takes_every_message_once_and_keeps_their_order(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given 5 tasks waiting in a paused worker's queue and 2 in the target's own queue
    stranded = broker.send(SOURCE, 5)
    backlog = broker.send(A, 2)
    # When all of them are moved to A
    moved = messages.move(SOURCE, lambda: A)
    # Then A's consumer gets the stranded ones first, oldest first, then its own backlog
    assert moved == Counter({A: 5})
    assert broker.consume_ids(A) == stranded + backlog
    assert client.exists(SOURCE) == 0


def test_move_rewrites_only_the_routing_key(messages: StrandedMessages, client: Any) -> None:
    # Given kombu messages waiting in the source queue
    originals = kombu_messages(SOURCE, 3)
    push(client, SOURCE, originals)
    # When they move to A
    messages.move(SOURCE, lambda: A)
    # Then each is byte-identical but for delivery_info.routing_key, which names A
    by_id = {task_id(raw): raw for raw in originals}
    after = consuming_order(client, A)
    assert len(after) == 3
    for raw in after:
        assert same_except_routing_key(raw, by_id[task_id(raw)], SOURCE, A)


def test_moved_messages_reach_kombu_addressed_to_the_new_queue(
    broker: Broker, messages: StrandedMessages
) -> None:
    # Given real tasks sent by Celery to the stranded queue
    sent = broker.send(SOURCE, 2)
    # When they move to A and A's consumer takes them
    messages.move(SOURCE, lambda: A)
    received = broker.consume(A)
    # Then kombu decodes them as before, with A as their routing key (a retry goes to A)
    assert [m.headers["id"] for m in received] == sent
    assert all(m.delivery_info["routing_key"] == A for m in received)
    assert all(m.delivery_info["exchange"] == "" for m in received)
    assert [m.decode()[0] for m in received] == [[SOURCE, 0], [SOURCE, 1]]


def test_priority_messages_go_to_the_target_list_of_the_same_priority(
    broker: Broker, messages: StrandedMessages, client: Any
) -> None:
    # Given tasks of priorities 0, 4, 7 and 9 waiting in the source's four lists
    ids = {p: broker.send(SOURCE, 2, priority=p) for p in (0, 4, 7, 9)}
    # When they move to A
    assert messages.move(SOURCE, lambda: A) == Counter({A: 8})
    # Then each lands in A's list of its priority step, and kombu serves them by priority
    for step, priority in ((0, 0), (3, 4), (6, 7), (9, 9)):
        key = f"{A}{PRIORITY_SEP}{step}" if step else A
        assert [task_id(raw) for raw in consuming_order(client, key)] == ids[priority]
    assert broker.consume_ids(A) == ids[0] + ids[4] + ids[7] + ids[9]


def test_a_message_that_is_not_json_moves_unchanged(
    messages: StrandedMessages, client: Any
) -> None:
    # Given a foreign message between two kombu messages, one naming the source in plain text
    first, last = kombu_messages(SOURCE, 2)
    foreign = f'not json "routing_key": {json.dumps(SOURCE)[:-1]}'
    push(client, SOURCE, [first, foreign, last])
    # When the queue moves
    assert messages.move(SOURCE, lambda: A) == Counter({A: 3})
    # Then the foreign message is moved as it was, in its place
    after = consuming_order(client, A)
    assert after[1] == foreign
    assert [task_id(after[0]), task_id(after[2])] == [task_id(first), task_id(last)]


def test_counts_follow_the_chooser(broker: Broker, messages: StrandedMessages) -> None:
    # Given 7 waiting tasks and a chooser that alternates between A and B
    sent = broker.send(SOURCE, 7)
    # When they move
    moved = messages.move(SOURCE, cycle(A, B))
    # Then A got 4 and B 3, and together they hold each task exactly once
    assert moved == Counter({A: 4, B: 3})
    on_a, on_b = broker.consume_ids(A), broker.consume_ids(B)
    assert (len(on_a), len(on_b)) == (4, 3)
    assert sorted(on_a + on_b) == sorted(sent)
    # And each target serves its share in the original order
    assert on_a == [i for i in sent if i in on_a]
    assert on_b == [i for i in sent if i in on_b]


def test_batches_larger_than_move_batch(messages: StrandedMessages, client: Any) -> None:
    # Given more than two batches' worth of messages waiting
    originals = kombu_messages(SOURCE, 2 * MOVE_BATCH + 7)
    push(client, SOURCE, originals)
    calls: list[int] = []
    script = messages._move

    def counting(keys: list[str], args: list[Any]) -> Any:
        calls.append(int(args[0]))
        return script(keys=keys, args=args)

    messages._move = counting  # type: ignore[assignment]
    # When they move to A and B alternately
    moved = messages.move(SOURCE, cycle(A, B))
    # Then every message moved once, in order, and no script call moved more than a batch
    assert moved == Counter({A: MOVE_BATCH + 4, B: MOVE_BATCH + 3})
    assert max(calls) <= MOVE_BATCH
    on_a = [task_id(raw) for raw in consuming_order(client, A)]
    on_b = [task_id(raw) for raw in consuming_order(client, B)]
    sent = [task_id(raw) for raw in originals]
    assert sorted(on_a + on_b) == sorted(sent)
    assert on_a == [i for i in sent if i in set(on_a)]
    assert on_b == [i for i in sent if i in set(on_b)]


def test_a_list_emptied_meanwhile_moves_only_what_is_left(
    messages: StrandedMessages, client: Any
) -> None:
    # Given 6 waiting messages, 4 of which another consumer takes while targets are chosen
    originals = kombu_messages(SOURCE, 6)
    push(client, SOURCE, originals)
    taken: list[str] = []

    def chooser_racing_a_consumer() -> str:
        if not taken:
            taken.extend(client.rpop(SOURCE, 4))
        return A

    # When the queue moves
    moved = messages.move(SOURCE, chooser_racing_a_consumer)
    # Then the two left moved, and the count says two
    assert moved == Counter({A: 2})
    assert {task_id(r) for r in consuming_order(client, A)} | {task_id(r) for r in taken} == {
        task_id(r) for r in originals
    }
    assert client.llen(A) == 2


def test_an_empty_queue_moves_nothing(messages: StrandedMessages, client: Any) -> None:
    # Given nothing waiting
    # When the queue moves, with a chooser that must not be asked
    def never() -> str:
        raise AssertionError("chooser called for an empty queue")

    # Then nothing moves and nothing is written
    assert messages.move(SOURCE, never) == Counter()
    assert client.keys("*") == []


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 12), min_size=4, max_size=4),
    backlogs=st.lists(st.lists(st.integers(0, 3), min_size=4, max_size=4), min_size=1, max_size=3),
    batch=st.integers(1, 6),
    data=st.data(),
)
def test_move_never_loses_nor_doubles_a_message(
    sizes: list[int], backlogs: list[list[int]], batch: int, data: st.DataObject
) -> None:
    # Given random numbers of messages in each priority list of the source, random
    # backlogs on 1 to 3 targets, a random batch size and a chooser drawn at random
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    layout = BrokerLayout()
    targets = [f"rfqueue.t{i}@h" for i in range(len(backlogs))]
    source_lists, originals = layout.lists(SOURCE), {}
    waiting: list[list[str]] = []
    for index, (key, size) in enumerate(zip(source_lists, sizes, strict=True)):
        raws = kombu_messages(SOURCE, size, layout.steps[index])
        push(client, key, raws)
        originals.update({task_id(r): r for r in raws})
        waiting.append([task_id(r) for r in raws])
    backlog: dict[tuple[str, int], list[str]] = {}
    for target, lengths in zip(targets, backlogs, strict=True):
        for index, length in enumerate(lengths):
            raws = kombu_messages(target, length, layout.steps[index])
            push(client, layout.lists(target)[index], raws)
            backlog[(target, index)] = [task_id(r) for r in raws]
    choices: list[str] = []

    def choose() -> str:
        choices.append(data.draw(st.sampled_from(targets)))
        return choices[-1]

    # When the source is moved
    with mock.patch.object(rfqueue.stranded, "MOVE_BATCH", batch):
        moved = StrandedMessages(client, layout).move(SOURCE, choose)

    # Then the source is empty and the counts are the chooser's choices
    assert all(client.llen(key) == 0 for key in source_lists)
    assert moved == Counter(choices)
    assert sum(moved.values()) == sum(sizes)
    seen: list[str] = []
    for (target, index), own in backlog.items():
        served = consuming_order(client, layout.lists(target)[index])
        ids = [task_id(r) for r in served]
        rescued = ids[: len(ids) - len(own)]
        # And each target list serves its rescued messages first, in the source's order,
        # then its own backlog untouched
        assert ids[len(rescued) :] == own
        assert rescued == [i for i in waiting[index] if i in set(rescued)]
        for raw in served[: len(rescued)]:
            assert same_except_routing_key(raw, originals[task_id(raw)], SOURCE, target)
        seen.extend(rescued)
    # And every stranded message is now in exactly one target list
    assert sorted(seen) == sorted(originals)


# -- depths and layout ------------------------------------------------------------------


def test_depths_sum_every_priority_list(broker: Broker, messages: StrandedMessages) -> None:
    # Given tasks of several priorities on the source and a few on A
    broker.send(SOURCE, 2)
    broker.send(SOURCE, 3, priority=5)
    broker.send(SOURCE, 1, priority=9)
    broker.send(A, 4, priority=2)
    # When their depths are read
    depths = messages.depths([SOURCE, A, B])
    # Then each counts all its lists; an unknown queue is empty
    assert depths == {SOURCE: 6, A: 4, B: 0}


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
        moved = messages.move(SOURCE, lambda: A)
        restored = messages.restore_unacked([B], lambda: A)
        # Then all of it was found under kombu's keys, and A's consumer gets every task
        assert depths == {SOURCE: 4, B: 1}
        assert (moved, restored) == (Counter({A: 4}), Counter({A: 2}))
        assert sorted(b.consume_ids(A)) == sorted(waiting + killed)
        assert client.hlen("pfx:my_unacked") == client.zcard("pfx:my_unacked_index") == 0


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
    restored = messages.restore_unacked([SOURCE], lambda: A)
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
    messages.restore_unacked([SOURCE], lambda: A)
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
    messages.restore_unacked([SOURCE], lambda: A)
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

    def chooser_while_kombu_acts() -> str:
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
    restored = messages.restore_unacked({SOURCE}, lambda: A)
    # Then the good task is restored and the malformed value is left where it was
    assert restored == Counter({A: 1})
    assert broker.consume_ids(A) == [dead]
    assert unacked(client) == {"bad-tag": raw}
    assert index(client) == ["bad-tag"]


def test_restore_with_no_queue_reads_nothing(messages: StrandedMessages, client: Any) -> None:
    # Given unacked entries
    client.hset("unacked", "t", json.dumps([json.loads(real_message()), "", SOURCE]))
    # When restore is asked for no queue
    restored = messages.restore_unacked([], lambda: A)
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
    restored = messages.restore_unacked([SOURCE], lambda: rnd.choice([A, B]))
    # Then each is waiting on exactly one target and the counts say where
    on_a, on_b = broker.consume_ids(A), broker.consume_ids(B)
    assert restored == Counter({A: len(on_a), B: len(on_b)})
    assert sorted(on_a + on_b) == sorted(dead)
