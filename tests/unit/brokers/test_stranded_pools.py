"""Stranded messages move only inside their pool, to workers that have their task.

The key of a message is its task name and its ``rfqueue-pool`` header; a chooser names
a target per key (or none: the message stays, in its place).
"""

from __future__ import annotations

import json
from collections import Counter
from unittest import mock

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

import rfqueue.brokers.stranded
from rfqueue.brokers.redis_layout import BrokerLayout
from rfqueue.brokers.stranded import StrandedMessages, message_key
from tests.unit.kombu_fakes import SOURCE, A, B, consuming_order, kombu_messages, push, task_id

KEYS = [("app.v", "video"), ("app.t", "celery"), ("app.t", ""), ("celery.ping", "video")]


def keyed(queue: str, task: str, pool: str, count: int = 1, priority: int = 0) -> list[str]:
    """Messages as kombu writes them, of ``task`` in ``pool`` ('' for no pool header)."""
    out = []
    for raw in kombu_messages(queue, count, priority):
        message = json.loads(raw)
        message["headers"]["task"] = task
        if pool:
            message["headers"]["rfqueue-pool"] = pool
        out.append(json.dumps(message))
    return out


def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def test_the_key_is_the_task_and_the_pool_header() -> None:
    assert message_key(keyed(SOURCE, "app.v", "video")[0]) == ("app.v", "video")
    assert message_key(keyed(SOURCE, "app.t", "")[0]) == ("app.t", "")
    assert message_key("not json") == ("", "")


def test_only_messages_with_a_target_move_the_others_stay_in_order() -> None:
    # Given a paused video worker's queue: video tasks and a task only celery workers have
    redis = client()
    v1, t1, v2, t2 = (keyed(SOURCE, *key)[0] for key in [KEYS[0], KEYS[1], KEYS[0], KEYS[1]])
    push(redis, SOURCE, [v1, t1, v2, t2])
    # When only the video tasks have an up worker to go to
    chooser = {("app.v", "video"): A}
    moved = StrandedMessages(redis).move(SOURCE, lambda task, pool: chooser.get((task, pool)))
    # Then they moved, in their order; the others wait where they were, in theirs
    assert moved == Counter({A: 2})
    assert [task_id(r) for r in consuming_order(redis, A)] == [task_id(v1), task_id(v2)]
    assert [task_id(r) for r in consuming_order(redis, SOURCE)] == [task_id(t1), task_id(t2)]


def test_messages_of_one_key_are_spread_by_the_chooser() -> None:
    redis = client()
    push(redis, SOURCE, keyed(SOURCE, "app.v", "video", 6))
    turn = iter(range(100))
    moved = StrandedMessages(redis).move(SOURCE, lambda *_: (A, B)[next(turn) % 2])
    assert moved == Counter({A: 3, B: 3})


def test_an_unacked_message_with_nowhere_to_go_returns_to_its_own_queue() -> None:
    # Given a dead worker's unacknowledged video task, and no video worker up
    redis = client()
    raw = keyed(SOURCE, "app.v", "video")[0]
    entry = json.dumps([json.loads(raw), "", SOURCE])
    redis.hset("unacked", "tag-1", entry)
    redis.zadd("unacked_index", {"tag-1": 1.0})
    # When it is restored
    restored = StrandedMessages(redis).restore_unacked([SOURCE], lambda *_: None)
    # Then it waits in its own queue (to be moved once a video worker is up), not lost
    assert restored == Counter({SOURCE: 1})
    assert [task_id(r) for r in consuming_order(redis, SOURCE)] == [task_id(raw)]
    assert redis.hlen("unacked") == 0


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(st.sampled_from(range(len(KEYS))), max_size=30),
    priorities=st.lists(st.sampled_from([0, 3, 6, 9]), min_size=30, max_size=30),
    movable=st.sets(st.sampled_from(range(len(KEYS)))),
    batch=st.integers(1, 7),
    data=st.data(),
)
def test_never_lost_nor_doubled_and_the_stayers_keep_their_order(
    keys: list[int], priorities: list[int], movable: set[int], batch: int, data: st.DataObject
) -> None:
    # Given messages of random keys and priorities, some keys with somewhere to go
    redis, layout = client(), BrokerLayout()
    sent: dict[str, tuple[int, int]] = {}  # id -> (key, priority)
    for key, priority in zip(keys, priorities, strict=False):
        raw = keyed(SOURCE, *KEYS[key], priority=priority)[0]
        push(redis, layout.list_for(SOURCE, priority), [raw])
        sent[task_id(raw)] = (key, priority)
    order = list(sent)  # oldest first
    chosen: dict[str, list[str]] = {}

    def choose(task: str, pool: str) -> str | None:
        key = KEYS.index((task, pool))
        if key not in movable:
            return None
        target = data.draw(st.sampled_from([A, B]))
        chosen.setdefault(f"{task}\n{pool}", []).append(target)
        return target

    # When the source is moved, a few messages per script call
    with mock.patch.object(rfqueue.brokers.stranded, "MOVE_BATCH", batch):
        moved = StrandedMessages(redis, layout).move(SOURCE, choose)

    # Then every message is in exactly one place
    where: dict[str, str] = {}
    for queue in (SOURCE, A, B):
        for key in layout.lists(queue):
            for raw in consuming_order(redis, key):
                assert task_id(raw) not in where
                where[task_id(raw)] = queue
    assert sorted(where) == sorted(sent)
    # And exactly the messages of movable keys left the source, as the counts say
    assert {i for i, q in where.items() if q != SOURCE} == {
        i for i, (key, _) in sent.items() if key in movable
    }
    assert moved == Counter(q for q in where.values() if q != SOURCE)
    # And in each list, what is there keeps the order in which it was sent
    for queue in (SOURCE, A, B):
        for key in layout.lists(queue):
            ids = [task_id(raw) for raw in consuming_order(redis, key)]
            assert ids == [i for i in order if i in set(ids)]
