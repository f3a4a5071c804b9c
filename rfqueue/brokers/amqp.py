"""RabbitMQ (AMQP 0-9-1): depths by passive declare, moves by get, confirmed publish, ack.

A message waiting in a paused worker's queue is taken with ``basic.get`` (not
acknowledged yet), published again to the chosen queue through the default exchange
with ``mandatory`` set and publisher confirms on, and only then acknowledged. If
anything fails in between, the channel is closed and RabbitMQ puts the message back
in its queue: a move can deliver a message twice (if the process dies between the
confirm and the ack), never zero times. The message is republished as it was
(body, headers, properties), so Celery sees the same task.

Nothing needs restoring by hand: RabbitMQ itself requeues the unacknowledged
messages of a consumer whose connection closed (at once for a killed process; after
the missed heartbeats, ``broker_heartbeat``, for a host cut off from the network).
They land in the dead worker's own queue, and from there the rescuer moves them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import amqp
import kombu.connection
from kombu.utils.url import maybe_sanitize_url

from rfqueue.brokers.base import Broker, BrokerRefused, BrokerUnavailable, Chooser
from rfqueue.keys import POOL_HEADER

logger = logging.getLogger(__name__)

#: messages one :meth:`AmqpBroker.move` call moves at most, so a round stays short
MOVE_BATCH = 1000

#: AMQP reply code of a passive declare of a queue that does not exist
NOT_FOUND = 404


def _key(message: Any) -> tuple[str, str]:
    """``(task, pool)`` from a message's headers ('' for what is missing)."""
    headers = getattr(message, "headers", None) or {}
    task, pool = headers.get("task"), headers.get(POOL_HEADER)
    return (task if isinstance(task, str) else "", pool if isinstance(pool, str) else "")


class AmqpBroker(Broker):
    """A RabbitMQ broker, reached with one connection of its own (used under a lock)."""

    schemes: ClassVar[tuple[str, ...]] = ("amqp", "amqps", "pyamqp")

    def __init__(self, url: str, socket_timeout: float, ssl: Any = None) -> None:
        self.url = url
        self.socket_timeout = socket_timeout
        self.ssl = ssl
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None
        self._pid = os.getpid()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], url: str, socket_timeout: float) -> AmqpBroker:
        """The app's broker URL and TLS settings (``broker_use_ssl``)."""
        return cls(url, socket_timeout, conf.get("broker_use_ssl"))

    # -- the three operations -------------------------------------------------------

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Ready messages per queue (a queue not declared yet counts 0)."""
        with self._lock, self._errors_as_unavailable():
            return {queue: self._depth(queue) for queue in queues}

    def move(self, source: str, choose: Chooser) -> Counter[str]:
        """Move up to :data:`MOVE_BATCH` messages; a later round moves the rest.

        A message with nowhere to go (``choose`` names no queue for its task and pool) is
        held unacknowledged until the batch ends, then rejected with requeue: RabbitMQ
        puts it back in its place, and the batch goes on past it meanwhile.
        """
        moved: Counter[str] = Counter()
        with self._lock, self._errors_as_unavailable():
            channel = self._open_channel()
            stay: list[Any] = []
            for _ in range(MOVE_BATCH):
                message = channel.basic_get(queue=source, no_ack=False)
                if message is None:
                    break
                target = choose(*_key(message))
                if target is None:
                    stay.append(message.delivery_tag)
                    continue
                # With confirms on, this returns once RabbitMQ has the message; mandatory
                # makes a publish to a queue that does not exist raise instead of vanish.
                channel.basic_publish(message, exchange="", routing_key=target, mandatory=True)
                channel.basic_ack(message.delivery_tag)
                moved[target] += 1
            for tag in stay:
                channel.basic_reject(tag, requeue=True)
        return moved

    # restore_unacked: the broker's default (nothing); RabbitMQ requeues them itself.

    def check_login(self) -> None:
        """One connection: a refused login or virtual host is :class:`BrokerRefused`.

        Celery calls a refused login unrecoverable and exits with a traceback; this says
        it in one line first. Any other error (say, RabbitMQ still starting) is left to
        Celery's own retries.
        """
        with self._lock:
            try:
                self._open_channel()
            except (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed) as exc:
                url = maybe_sanitize_url(self.url)
                raise BrokerRefused(f"RabbitMQ refused {url}: {exc.reply_text}") from None
            except Exception as exc:
                logger.debug("rfqueue: broker check skipped: %r", exc)
            finally:
                self._drop(close=True)

    def close(self) -> None:
        with self._lock:
            self._drop(close=True)

    # -- connection -------------------------------------------------------------------

    def _depth(self, queue: str) -> int:
        channel = self._open_channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).message_count)
        except amqp.exceptions.NotFound:
            self._channel = None  # the broker closed the channel with the 404
            return 0

    def _open_channel(self) -> Any:
        if self._pid != os.getpid():  # a forked child must not share the parent's socket
            self._connection, self._channel, self._pid = None, None, os.getpid()
        if self._connection is None:
            connection: Any = kombu.connection.Connection(  # type: ignore[no-untyped-call]
                self.url,
                ssl=self.ssl,
                connect_timeout=self.socket_timeout,
                heartbeat=0,
                transport_options={"confirm_publish": True},
            )
            connection.ensure_connection(max_retries=1)
            self._connection = connection
        if self._channel is None:
            self._channel = self._connection.channel()
        return self._channel

    def _drop(self, close: bool) -> None:
        """Forget the connection; closing it makes RabbitMQ requeue what it had handed out."""
        connection, self._connection, self._channel = self._connection, None, None
        if close and connection is not None:
            try:
                connection.release()
            except Exception as exc:  # it is broken already: nothing left to release
                logger.debug("rfqueue: closing the AMQP connection: %r", exc)

    @contextlib.contextmanager
    def _errors_as_unavailable(self) -> Iterator[None]:
        """Any error inside: drop the connection (RabbitMQ requeues what it handed out)
        and raise :class:`BrokerUnavailable`, which callers treat like a Redis outage."""
        try:
            yield
        except Exception as exc:
            self._drop(close=True)
            raise BrokerUnavailable(f"AMQP broker: {exc}") from exc
