"""Stranded messages moved from one queue to others, on kombu's Redis layout, and their depths.

Messages are published and consumed by Celery and kombu themselves (kombu's Redis
transport on a fakeredis server, see kombu_fakes), so the layout, the JSON and the order
are kombu's own.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from unittest import mock

import fakeredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rfqueue.brokers.stranded
from rfqueue.brokers.redis_layout import PRIORITY_SEP, BrokerLayout
from rfqueue.brokers.stranded import MOVE_BATCH, StrandedMessages
from tests.unit.kombu_fakes import (
    SOURCE,
    A,
    B,
    Broker,
    broker_on,
    consuming_order,
    cycle,
    kombu_messages,
    messages_on,
    push,
    task_id,
)

broker = pytest.fixture(broker_on, name="broker")
messages = pytest.fixture(messages_on, name="messages")


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
    moved = messages.move(SOURCE, lambda *_: A)
    # Then A's consumer gets the stranded ones first, oldest first, then its own backlog
    assert moved == Counter({A: 5})
    assert broker.consume_ids(A) == stranded + backlog
    assert client.exists(SOURCE) == 0


def test_move_rewrites_only_the_routing_key(messages: StrandedMessages, client: Any) -> None:
    # Given kombu messages waiting in the source queue
    originals = kombu_messages(SOURCE, 3)
    push(client, SOURCE, originals)
    # When they move to A
    messages.move(SOURCE, lambda *_: A)
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
    messages.move(SOURCE, lambda *_: A)
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
    assert messages.move(SOURCE, lambda *_: A) == Counter({A: 8})
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
    assert messages.move(SOURCE, lambda *_: A) == Counter({A: 3})
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

    def chooser_racing_a_consumer(*_: str) -> str:
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
    def never(*_: str) -> str:
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

    def choose(*_: str) -> str:
        choices.append(data.draw(st.sampled_from(targets)))
        return choices[-1]

    # When the source is moved
    with mock.patch.object(rfqueue.brokers.stranded, "MOVE_BATCH", batch):
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


# -- depths ----------------------------------------------------------------------------


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


def test_depths_follow_the_layout_past_one_script_call(client: Any, monkeypatch) -> None:
    # Given a layout with a key prefix, a separator and steps of its own, and five queues
    # read two per script call
    monkeypatch.setattr(rfqueue.brokers.stranded, "DEPTH_BATCH", 2)
    layout = BrokerLayout(prefix="app:", steps=(0, 5), sep="/")
    queues = [f"q{i}" for i in range(5)]
    for i, queue in enumerate(queues):
        for _ in range(i):
            client.rpush(f"app:{queue}", "m")
        client.rpush(f"app:{queue}/5", "m")
    client.rpush("q0", "m", "m")  # the same name without the prefix is another queue
    client.rpush("app:q0\x06\x163", "m")  # and a list of kombu's default steps is not its
    # When their depths are read
    depths = StrandedMessages(client, layout).depths(queues)
    # Then each counts its lists of this layout, in order, and nothing else
    assert depths == {queue: i + 1 for i, queue in enumerate(queues)}
    assert StrandedMessages(client, layout).depths([]) == {}
