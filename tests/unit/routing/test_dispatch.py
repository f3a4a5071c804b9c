"""Batch dispatch: Celery's exact messages, routed per task, pushed in pipelined round trips.

kombu's real Redis transport runs here on a fakeredis server (its client factory is
swapped), so the messages in the lists are the bytes kombu would write to Redis.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import kombu.transport.redis
import pytest
from celery import Celery, signals
from celery._state import _task_stack
from kombu.exceptions import EncodeError

from rfqueue.brokers.redis_layout import queue_lists
from rfqueue.routing.dispatch import DispatchError, dispatch_many
from rfqueue.routing.policies import PolicyError
from rfqueue.routing.router import Router
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from tests.unit.kombu_fakes import PREFIXED, kombu_broker

QA, QB, QC = "rfqueue.a@h", "rfqueue.b@h", "rfqueue.c@h"


class BrokerClient(fakeredis.FakeRedis):  # type: ignore[misc]
    """kombu's client on the fake server, counting lone commands and pipelines."""

    calls: Counter[str] = Counter()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        BrokerClient.calls[str(args[0]).upper()] += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        BrokerClient.calls["PIPELINE"] += 1
        return super().pipeline(transaction, shard_hint)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, server: fakeredis.FakeServer) -> Iterator[Counter[str]]:
    """kombu's Redis transport talking to the test's fake server."""
    BrokerClient.calls = Counter()
    monkeypatch.setattr(
        kombu.transport.redis.Channel,
        "_create_client",
        lambda self, asynchronous=False: BrokerClient(server=server),
    )
    yield BrokerClient.calls


def make_app(app_class: type[Celery] = Celery, **rfqueue: Any) -> Any:
    app = app_class("t", broker="redis://fake-broker:6379/0", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    rfqueue.setdefault("policy", "round_robin")  # tests name the worker each task goes to
    settings = Settings(redis_url="redis://fake:6379/0", namespace="t", **rfqueue)
    app.conf.task_routes = [Router(app, settings=settings)]

    @app.task(name="app.work", shared=False)
    def work(n: int, label: str = "") -> None:
        """A task to publish."""

    return app


@pytest.fixture
def app(
    broker: Counter[str], use_fake_redis: None, table: FailureTable, stop: Callable[..., None]
) -> Iterator[Any]:
    for queue in (QA, QB, QC):
        table.register(queue.removeprefix("rfqueue."), queue)
    app = make_app()
    yield app
    stop(app.conf.task_routes[0].snapshot)


def messages(client: fakeredis.FakeRedis, queue: str) -> list[dict[str, Any]]:
    """The queue's messages, priority lists included, oldest first in each list."""
    return [
        json.loads(raw) for key in queue_lists(queue) for raw in reversed(client.lrange(key, 0, -1))
    ]


def by_id(client: fakeredis.FakeRedis) -> dict[str, dict[str, Any]]:
    out = {}
    for queue in (QA, QB, QC, "celery"):
        for message in messages(client, queue):
            out[message["headers"]["id"]] = message
    return out


def test_returns_ids_in_order_and_routes_each_task(app: Any, client: fakeredis.FakeRedis) -> None:
    # Given three up workers, round robin
    # When 30 tasks are dispatched
    ids = dispatch_many(app.tasks["app.work"], [(n,) for n in range(30)])
    # Then there is one message per id, the n-th task carries n, shared out in turns
    assert len(ids) == len(set(ids)) == 30
    sent = by_id(client)
    assert set(sent) == set(ids)
    assert Counter(m["properties"]["delivery_info"]["routing_key"] for m in sent.values()) == {
        QA: 10,
        QB: 10,
        QC: 10,
    }
    assert all(sent[i]["headers"]["argsrepr"] == f"({n},)" for n, i in enumerate(ids))


@pytest.mark.parametrize(
    "options",
    [
        {"countdown": 30},
        {"priority": 7, "headers": {"tenant": "t1"}},
        {"argsrepr": "(hidden)", "kwargsrepr": "{}", "time_limit": 9},
        {"ignore_result": False, "serializer": "json"},
    ],
)
def test_messages_are_exactly_what_apply_async_sends(
    app: Any, client: fakeredis.FakeRedis, options: dict[str, Any]
) -> None:
    # Given one task sent by apply_async and one by dispatch_many, same arguments and options
    task = app.tasks["app.work"]
    single = task.apply_async((7,), {"label": "x"}, **options).id
    [batched] = dispatch_many(task, [(7,)], {"label": "x"}, **options)
    one, other = by_id(client)[single], by_id(client)[batched]
    # Then they differ only where every message differs: ids, times, queue, delivery tag
    for message, task_id in ((one, single), (other, batched)):
        assert message["headers"].pop("id") == task_id
        assert message["headers"].pop("root_id") == task_id  # a task sent from outside a task
        assert message["properties"].pop("correlation_id") == task_id
        message["headers"].pop("eta")  # now + countdown, a few microseconds apart
        message["properties"].pop("delivery_tag")
        message["properties"]["delivery_info"].pop("routing_key")
    assert one == other
    assert one["headers"]["argsrepr"] == options.get("argsrepr", "(7,)")


def test_pipelined_round_trips(app: Any, broker: Counter[str]) -> None:
    # When 2,500 tasks are dispatched in batches of 1,000
    app.tasks["app.work"].apply_async((0,))  # connect and declare before counting
    broker.clear()
    dispatch_many(app.tasks["app.work"], [(n,) for n in range(2500)], batch_size=1000)
    # Then no task had its own LPUSH: three pipelines carried them
    assert broker["LPUSH"] == 0
    assert broker["PIPELINE"] <= 3 + 3  # three flushes, plus at most one declare per queue


def test_paused_worker_gets_nothing(
    app: Any, table: FailureTable, client: fakeredis.FakeRedis
) -> None:
    table.pause("b@h", 600, Reason.MANUAL)
    assert app.conf.task_routes[0].snapshot.refresh()
    dispatch_many(app.tasks["app.work"], [(n,) for n in range(20)])
    assert client.llen(QB) == 0
    assert client.llen(QA) == client.llen(QC) == 10


def test_mapping_items_are_keyword_arguments(app: Any, client: fakeredis.FakeRedis) -> None:
    ids = dispatch_many(app.tasks["app.work"], [{"n": 1}, {"n": 2, "label": "own"}], {"label": "c"})
    sent = by_id(client)
    assert [sent[i]["headers"]["kwargsrepr"] for i in ids] == [
        "{'label': 'c', 'n': 1}",
        "{'label': 'own', 'n': 2}",
    ]


def test_options_it_does_not_mirror_take_apply_async(app: Any, client: fakeredis.FakeRedis) -> None:
    # expires goes through apply_async for every item, still published and routed
    ids = dispatch_many(app.tasks["app.work"], [(1,), (2,)], expires=60)
    sent = by_id(client)
    assert set(ids) <= set(sent)
    assert all(sent[i]["headers"]["expires"] for i in ids)


def test_an_explicit_queue_no_worker_consumes_wins(app: Any, client: fakeredis.FakeRedis) -> None:
    dispatch_many(app.tasks["app.work"], [(1,), (2,)], queue="elsewhere")
    assert client.llen("elsewhere") == 2
    assert app.conf.task_routes[0].routed.totals() == {}


def test_an_explicit_pool_is_routed_inside_it_with_its_header(
    app: Any, client: fakeredis.FakeRedis
) -> None:
    # Given workers that consume the default queue (entries without pools)
    # When tasks are sent to that pool by name
    ids = dispatch_many(app.tasks["app.work"], [(1,), (2,), (3,)], queue="celery")
    # Then each went to a worker's own queue, carrying its pool for the rescue
    sent = by_id(client)
    assert client.llen("celery") == 0
    assert {sent[i]["properties"]["delivery_info"]["routing_key"] for i in ids} == {QA, QB, QC}
    assert all(sent[i]["headers"]["rfqueue-pool"] == "celery" for i in ids)


def test_eager_mode_runs_the_tasks_here(broker: Counter[str]) -> None:
    app = Celery("eager", set_as_current=False)
    app.conf.task_always_eager = True
    ran: list[int] = []

    @app.task(name="app.note", shared=False)
    def note(n: int) -> None:
        ran.append(n)

    ids = dispatch_many(note, [(1,), (2,)])
    assert ran == [1, 2] and len(ids) == 2


def test_missing_hash_key_publishes_nothing(
    broker: Counter[str],
    use_fake_redis: None,
    table: FailureTable,
    client: fakeredis.FakeRedis,
    stop: Callable[..., None],
) -> None:
    # Given a hash router and a batch whose third task lacks the key
    table.register("a@h", QA)
    app = make_app(policy="hash", hash_key="label")
    items: list[Any] = [{"n": 1, "label": "x"}, {"n": 2, "label": "y"}, {"n": 3}]
    try:
        # When it is dispatched, Then the error names the key, and nothing was sent
        with pytest.raises(PolicyError, match="'label'"):
            dispatch_many(app.tasks["app.work"], items)
        assert client.llen(QA) == 0
    finally:
        stop(app.conf.task_routes[0].snapshot)


@pytest.mark.parametrize("size", [0, -1, True, 2.5])
def test_bad_batch_size(broker: Counter[str], size: Any) -> None:
    with pytest.raises(ValueError, match=r"^batch_size: must be a positive whole number"):
        dispatch_many(make_app().tasks["app.work"], [(1,)], batch_size=size)


@pytest.mark.parametrize("item", ["abc", 5, None])
def test_bad_item(app: Any, client: fakeredis.FakeRedis, item: Any) -> None:
    with pytest.raises(TypeError, match="each item must be a tuple of arguments or a mapping"):
        dispatch_many(app.tasks["app.work"], [(1,), item])
    assert client.llen(QA) + client.llen(QB) + client.llen(QC) == 0


def test_apply_async_carries_the_pool_header_too(app: Any, client: fakeredis.FakeRedis) -> None:
    # Celery's send_task_message merges a route's headers into the message headers
    result = app.tasks["app.work"].apply_async((1,))
    message = by_id(client)[result.id]
    assert message["headers"]["rfqueue-pool"] == "celery"
    assert message["properties"]["delivery_info"]["routing_key"] in (QA, QB, QC)


def take_n(n: int) -> None:
    """A task body for the subclass tests."""


class TestAllOrNothing:
    """Issue 15 item 2: a batch is published whole or not at all, and says what went out."""

    def test_one_item_that_cannot_be_encoded_publishes_nothing(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        # Given 1,499 good items and one that JSON cannot encode, at the end
        published: list[str] = []

        def note(sender: Any = None, **_: Any) -> None:
            published.append(sender)

        signals.after_task_publish.connect(note, weak=False)
        items: list[Any] = [(n,) for n in range(1499)] + [(object(),)]
        try:
            # When it is dispatched, Then it fails, and nothing at all went out
            with pytest.raises(EncodeError):
                dispatch_many(app.tasks["app.work"], items)
        finally:
            signals.after_task_publish.disconnect(note)
        assert client.llen(QA) + client.llen(QB) + client.llen(QC) == 0
        assert published == []
        assert +app.conf.task_routes[0].routed.totals() == {}

    def test_after_task_publish_fires_once_the_message_is_in_redis(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        seen: list[bool] = []

        def check(sender: Any = None, routing_key: str = "", body: Any = None, **_: Any) -> None:
            seen.append(client.llen(routing_key) > 0)

        signals.after_task_publish.connect(check, weak=False)
        try:
            dispatch_many(app.tasks["app.work"], [(n,) for n in range(30)])
        finally:
            signals.after_task_publish.disconnect(check)
        assert seen == [True] * 30

    def test_a_failed_write_says_which_ids_were_published(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        # Given three declared queues (kombu declares once per connection), then one
        # worker's queue that Redis cannot push to (a key of another type)
        dispatch_many(app.tasks["app.work"], [(n,) for n in range(3)])
        client.delete(QA, QB, QC)
        client.set(QB, "not a list")
        # When a batch is dispatched, Then the error carries the ids that did go out
        with pytest.raises(DispatchError, match="20 of 30 published") as raised:
            dispatch_many(app.tasks["app.work"], [(n,) for n in range(30)])
        error = raised.value
        client.delete(QB)
        sent = by_id(client)
        assert set(error.published) == set(sent) and len(sent) == 20
        assert len(error.unpublished) == 10 and not set(error.unpublished) & set(sent)
        assert +app.conf.task_routes[0].routed.totals() == {QA: 11, QB: 1, QC: 11}

    def test_the_parent_s_priority_is_inherited_when_celery_says_so(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        # Given a batch sent from inside a task that was delivered with priority 5
        app.conf.task_inherit_parent_priority = True
        parent = app.tasks["app.work"]
        parent.push_request(id="p-1", root_id="r-1", delivery_info={"priority": 5},
                            called_directly=False)  # fmt: skip
        _task_stack.push(parent)
        try:
            ids = dispatch_many(app.tasks["app.work"], [(1,), (2,)])
            single = app.tasks["app.work"].apply_async((3,)).id
        finally:
            _task_stack.pop()
            parent.pop_request()
        # Then each message has the parent's priority, as apply_async's has
        sent = by_id(client)
        assert [sent[i]["properties"]["priority"] for i in [*ids, single]] == [5, 5, 5]
        assert {sent[i]["headers"]["parent_id"] for i in ids} == {"p-1"}

    def test_retry_declare_and_producer_are_accepted(self, app: Any, client: Any) -> None:
        task = app.tasks["app.work"]
        with app.producer_or_acquire() as producer:
            ids = dispatch_many(task, [(1,), (2,)], retry=True, declare=[], producer=producer)
        ids += dispatch_many(task, [(3,)], retry=False, retry_policy={"max_retries": 1})
        assert set(ids) <= set(by_id(client))

    def test_an_overridden_apply_async_is_used_for_every_item(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        class Tagged(app.Task):  # type: ignore[name-defined,misc]
            def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
                options["headers"] = {**(options.get("headers") or {}), "tenant": "t9"}
                return super().apply_async(args, kwargs, **options)

        tagged = app.task(name="app.tagged", base=Tagged, shared=False)(take_n)
        ids = dispatch_many(tagged, [(1,), (2,)])
        assert [by_id(client)[i]["headers"]["tenant"] for i in ids] == ["t9", "t9"]

    def test_an_overridden_send_task_is_used_for_every_item(
        self, broker: Counter[str], use_fake_redis: None, table: FailureTable,
        client: fakeredis.FakeRedis, stop: Callable[..., None],
    ) -> None:  # fmt: skip
        table.register("a@h", QA)
        sent: list[str] = []

        class Locking(Celery):
            def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any:
                sent.append(name)
                return super().send_task(name, *args, **kwargs)

        app = make_app(app_class=Locking)
        try:
            ids = dispatch_many(app.tasks["app.work"], [(1,), (2,)])
        finally:
            stop(app.conf.task_routes[0].snapshot)
        assert sent == ["app.work", "app.work"] and set(ids) <= set(by_id(client))

    def test_an_override_that_fails_midway_says_what_was_published(
        self, app: Any, client: fakeredis.FakeRedis
    ) -> None:
        class Flaky(app.Task):  # type: ignore[name-defined,misc]
            def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
                if args == (3,):
                    raise RuntimeError("lock not taken")
                return super().apply_async(args, kwargs, **options)

        flaky = app.task(name="app.flaky", base=Flaky, shared=False)(take_n)
        with pytest.raises(DispatchError, match="2 of 5") as raised:
            dispatch_many(flaky, [(1,), (2,), (3,), (4,), (5,)])
        assert list(raised.value.published) == list(by_id(client))
        assert isinstance(raised.value.__cause__, RuntimeError)


@pytest.mark.parametrize("transport", [{}, PREFIXED], ids=["default", "prefixed"])
def test_a_batch_lands_where_apply_async_s_message_lands(
    server: fakeredis.FakeServer, client: fakeredis.FakeRedis, use_fake_redis: None,
    table: FailureTable, stop: Callable[..., None], transport: dict[str, Any],
) -> None:  # fmt: skip
    # Given kombu with a key prefix, its own separator and priority steps (or its defaults)
    table.register("a@h", QA)
    with kombu_broker(server, transport) as broker:
        app = broker.app
        app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
        settings = Settings(redis_url="redis://fake:6379/0", namespace="t", policy="round_robin")
        app.conf.task_routes = [Router(app, settings=settings)]
        task = app.task(name="app.work", shared=False)(take_n)
        try:
            # When one task goes by apply_async and one by dispatch_many, with a priority
            single = task.apply_async((1,), priority=6).id
            [batched] = dispatch_many(task, [(1,)], priority=6)
        finally:
            stop(app.conf.task_routes[0].snapshot)
    # Then both are in the same list, and differ only where every message differs
    [key] = [k for k in client.keys("*") if QA in k and "_kombu" not in k]
    found = {m["headers"]["id"]: m for m in map(json.loads, client.lrange(key, 0, -1))}
    for message in (found[single], found[batched]):
        for name in ("id", "root_id"):
            message["headers"].pop(name)
        for name in ("correlation_id", "delivery_tag"):
            message["properties"].pop(name)
    assert found[single] == found[batched]
    assert key.startswith(transport.get("global_keyprefix", ""))
