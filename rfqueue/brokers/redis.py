"""The Redis transport: depths by ``LLEN``, moves and restores by Lua, one message at a time.

The mechanics are in :mod:`~rfqueue.brokers.stranded` (moving messages between kombu's lists),
:mod:`~rfqueue.brokers.handoff` (a message taken as Redis went away) and
:mod:`~rfqueue.brokers.wake`
(ending the blocking read of a worker that resumes).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import redis

from rfqueue.brokers.base import Broker, Chooser
from rfqueue.brokers.claim import claim_pool_deliveries
from rfqueue.brokers.handoff import handoff
from rfqueue.brokers.redis_layout import BrokerLayout
from rfqueue.brokers.stranded import StrandedMessages
from rfqueue.brokers.wake import wake_blocked_read
from rfqueue.connection import connect, kombu_master_name

logger = logging.getLogger(__name__)


class RedisBroker(Broker):
    """A kombu Redis broker, reached with its own redis-py client."""

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "sentinel")

    def __init__(self, client: Any, layout: BrokerLayout | None = None) -> None:
        self.client = client
        self.layout = layout or BrokerLayout()
        self.messages = StrandedMessages(client, self.layout)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], url: str, socket_timeout: float) -> RedisBroker:
        """A client for ``url`` with rfqueue's timeouts, and the app's key layout.

        Through Sentinel, the master is the one kombu's ``master_name`` names.
        """
        options = conf.get("broker_transport_options")
        client = connect(
            url,
            sentinel_master=kombu_master_name(options),
            decode_responses=True,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
        return cls(client, BrokerLayout.from_transport_options(options))

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Every priority list counted, one round trip per thousand queues."""
        return self.messages.depths(queues)

    def move(self, source: str, choose: Chooser) -> Counter[str]:
        """Each message moves in one Lua step: never lost, never doubled."""
        return self.messages.move(source, choose)

    def restore_unacked(
        self, queues: Collection[str], choose: Chooser, held: Collection[str] = ()
    ) -> Counter[str]:
        """kombu would restore them only after its visibility timeout (an hour by default)."""
        return self.messages.restore_unacked(queues, choose, held)

    def consumer_started(self, consumer: Any, own_queue: str = "") -> None:
        """Guard the new channel's reads; record what it takes from a pool under
        ``own_queue``; push back what was held while Redis was away."""
        channel = getattr(consumer.task_consumer, "channel", None)
        if channel is not None:
            handoff.wrap(channel)
            if own_queue:
                claim_pool_deliveries(channel, own_queue)
        if len(handoff):
            try:
                handoff.put_back(self.client, self.layout)
            except (redis.RedisError, OSError) as exc:
                logger.warning("rfqueue: could not put back held tasks yet: %s", exc)

    def consumer_leaving(self, consumer: Any) -> None:
        """End its last blocked read: nothing pushed from now on may land in a worker that
        will not deliver it before its exit (a pool's shared queue, above all)."""
        wake_blocked_read(consumer, self.client)

    def consumer_resumed(self, consumer: Any) -> None:
        """The blocking read began before the queue was consumed again: end it now."""
        wake_blocked_read(consumer, self.client)
