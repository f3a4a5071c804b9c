"""AmqpBroker against a real RabbitMQ: depths, moves that keep every message, errors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from kombu import Connection, Exchange, Queue

from rfqueue.brokers import BrokerUnavailable, broker_for
from rfqueue.brokers.amqp import AmqpBroker
from rfqueue.cli import Context
from rfqueue.monitoring.metrics import TableCollector
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from tests.unit.monitoring.test_metrics import scrape

SOURCE, TARGET_A, TARGET_B = "rfqueue.w1@h", "rfqueue.w2@h", "rfqueue.w3@h"


@pytest.fixture
def connection(amqp_url: str) -> Iterator[Any]:
    # Publisher confirms: a publish returns once RabbitMQ holds the message, so a depth read
    # on the broker's own connection right after it counts every message (without them the
    # exporter test read 1 of 4 in CI).
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        yield conn


@pytest.fixture
def broker(amqp_url: str) -> Iterator[AmqpBroker]:
    made = AmqpBroker(amqp_url, socket_timeout=2)
    yield made
    made.close()


def declare(connection: Any, *names: str, max_priority: int | None = None) -> None:
    """Declare queues the way Celery does for a missing queue: a direct exchange of its name."""
    args = {"x-max-priority": max_priority} if max_priority else None
    for name in names:
        queue = Queue(name, Exchange(name), name, queue_arguments=args)
        queue(connection.default_channel).declare()


def publish(connection: Any, queue: str, count: int, priority: int | None = None) -> None:
    producer = connection.Producer(serializer="json")
    for seq in range(count):
        producer.publish(
            {"seq": seq},
            exchange=queue,
            routing_key=queue,
            headers={"task": "workers.tasks.record", "id": f"id-{seq}"},
            priority=priority,
            correlation_id=f"id-{seq}",
        )


def drain(connection: Any, queue: str) -> list[Any]:
    """Every message in ``queue`` (taken with basic.get; nothing is declared)."""
    bound = Queue(queue, no_declare=True)(connection.default_channel)
    got = []
    while (message := bound.get(no_ack=True)) is not None:
        got.append(message)
    return got


def test_broker_for_picks_amqp_by_scheme(amqp_url: str) -> None:
    assert isinstance(broker_for({"broker_url": amqp_url}, 2.0), AmqpBroker)
    assert isinstance(broker_for({"broker_url": "pyamqp://guest@h//"}, 2.0), AmqpBroker)
    assert broker_for({"broker_url": "memory://"}, 2.0) is None


def test_depths_count_ready_messages_and_a_missing_queue_is_zero(
    connection: Any, broker: AmqpBroker
) -> None:
    # Given one queue with 5 messages, one empty, one never declared
    declare(connection, SOURCE, TARGET_A)
    publish(connection, SOURCE, 5)
    # Then the depths say so, and the missing queue does not break the read
    assert broker.depths([SOURCE, "rfqueue.nobody@h", TARGET_A]) == {
        SOURCE: 5,
        "rfqueue.nobody@h": 0,
        TARGET_A: 0,
    }


def test_move_keeps_every_message_whole_and_spreads_them_by_the_chooser(
    connection: Any, broker: AmqpBroker
) -> None:
    # Given 10 priority messages waiting in a paused worker's queue
    declare(connection, SOURCE, TARGET_A, TARGET_B, max_priority=9)
    publish(connection, SOURCE, 10, priority=7)
    # When they are moved, alternately to two targets
    turn = itertools.cycle([TARGET_A, TARGET_B])
    moved = broker.move(SOURCE, lambda *_: next(turn))
    # Then 5 went to each, the source is empty, and each message arrived as it was sent
    assert moved == {TARGET_A: 5, TARGET_B: 5}
    assert broker.depths([SOURCE]) == {SOURCE: 0}
    arrived = drain(connection, TARGET_A) + drain(connection, TARGET_B)
    assert sorted(m.payload["seq"] for m in arrived) == list(range(10))
    for message in arrived:
        seq = message.payload["seq"]
        assert message.headers["id"] == f"id-{seq}"
        assert message.headers["task"] == "workers.tasks.record"
        assert message.properties["correlation_id"] == f"id-{seq}"
        assert message.properties["priority"] == 7
        assert message.content_type == "application/json"


def test_a_move_to_a_queue_that_does_not_exist_loses_nothing(
    connection: Any, broker: AmqpBroker
) -> None:
    # Given 3 messages waiting, and a chooser naming a queue nobody declared
    declare(connection, SOURCE)
    publish(connection, SOURCE, 3)
    # When the move is tried, it fails as an unavailable broker
    with pytest.raises(BrokerUnavailable):
        broker.move(SOURCE, lambda *_: "rfqueue.gone@h")
    # Then all 3 are back in the source queue, and the broker works again afterwards
    assert broker.depths([SOURCE]) == {SOURCE: 3}
    declare(connection, TARGET_A)
    assert broker.move(SOURCE, lambda *_: TARGET_A) == {TARGET_A: 3}


def test_a_move_keeps_each_message_in_its_pool_and_the_rest_in_place(
    connection: Any, broker: AmqpBroker
) -> None:
    # Given a paused worker's queue holding tasks of the video pool and of the default pool
    declare(connection, SOURCE, TARGET_A)
    producer = connection.Producer(serializer="json")
    for seq in range(6):
        pool = {"rfqueue-pool": "video"} if seq % 2 == 0 else {}
        headers = {"task": "workers.media.transcode", "id": f"id-{seq}", **pool}
        producer.publish({"seq": seq}, exchange=SOURCE, routing_key=SOURCE, headers=headers)

    # When only the video tasks have an up worker to go to
    def choose(task: str, pool: str) -> str | None:
        return TARGET_A if (task, pool) == ("workers.media.transcode", "video") else None

    moved = broker.move(SOURCE, choose)
    # Then they moved, and the others wait where they were, in their order
    assert moved == {TARGET_A: 3}
    assert [m.payload["seq"] for m in drain(connection, TARGET_A)] == [0, 2, 4]
    assert [m.payload["seq"] for m in drain(connection, SOURCE)] == [1, 3, 5]


def test_wrong_credentials_are_one_clear_error_without_the_password(amqp_url: str) -> None:
    # Given a URL with a wrong password
    wrong = amqp_url.replace("guest:guest@", "guest:not-the-password@")
    broker = AmqpBroker(wrong, socket_timeout=2)
    # When depths are read, the error says the login was refused, without the password
    with pytest.raises(BrokerUnavailable) as caught:
        broker.depths([SOURCE])
    assert "ACCESS_REFUSED" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_the_metrics_exporter_reads_depths_from_rabbitmq(
    connection: Any, amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a worker registered in the table whose RabbitMQ queue holds 4 messages
    table = FailureTable(fakeredis.FakeRedis(decode_responses=True), "rfqueue")
    table.register("w1@h", SOURCE)
    declare(connection, SOURCE)
    publish(connection, SOURCE, 4)
    # When the exporter, started with CELERY_BROKER_URL on RabbitMQ, is scraped
    monkeypatch.setenv("CELERY_BROKER_URL", amqp_url)
    settings = Settings.load({}, environ={})
    depths = Context(settings, None).broker_depths()
    _, samples = scrape(TableCollector(settings, table, depths=depths))
    # Then the depth gauge is RabbitMQ's count
    assert samples[("rfqueue_queue_depth", (("queue", SOURCE), ("worker", "w1@h")))] == 4
