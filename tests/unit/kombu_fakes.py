"""kombu's real Redis transport on a fakeredis server, and messages written as kombu writes them.

Shared by the unit tests of stranded messages, the rescuer, the handoff and the reclaim,
so that the layout, the JSON and the order they check are kombu's own.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any
from unittest import mock

import fakeredis
import redis
from celery import Celery
from kombu.message import Message
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps as kombu_dumps

from rfqueue.brokers.stranded import StrandedMessages

#: a stranded worker's queue and two queues its messages may go to
SOURCE, A, B = "rfqueue.w1@h", "rfqueue.w2@h", "rfqueue.w3@h"
#: the task name every published message carries (workers/tasks.py's)
TASK = "workers.tasks.record"
#: transport options that move every key kombu writes away from its defaults
PREFIXED = {
    "global_keyprefix": "pfx:",
    "priority_steps": [0, 5],
    "sep": ":",
    "unacked_key": "my_unacked",
    "unacked_index_key": "my_unacked_index",
}


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

    def take(self, queue: str, count: int) -> list[Message]:
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
        return taken

    def take_unacked(self, queue: str, count: int) -> list[str]:
        """The ids of the messages :meth:`take` holds unacknowledged."""
        return [m.headers["id"] for m in self.take(queue, count)]


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


def broker_on(server: fakeredis.FakeServer) -> Iterator[Broker]:
    """kombu on the ``server`` fixture's fakeredis; a module declares it as its fixture:

    ``broker = pytest.fixture(broker_on, name="broker")``
    """
    with kombu_broker(server) as b:
        yield b


def messages_on(client: fakeredis.FakeRedis) -> StrandedMessages:
    """The stranded messages of kombu's default layout on the ``client`` fixture's server."""
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


def cycle(*queues: str) -> Callable[[str, str], str]:
    """A chooser that names ``queues`` in turn, whatever the message's task and pool."""
    turn = iter(range(10**9))
    return lambda *_: queues[next(turn) % len(queues)]
