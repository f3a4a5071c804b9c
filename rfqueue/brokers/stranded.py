"""Stranded messages on the Redis transport: moved to healthy queues, one atomic step each.

Two ways a message can be stranded. It waits in the queue of a worker that is paused,
down or silent (nobody consumes it until that worker is back), or it was delivered to
a worker that died before acknowledging it (kombu would restore it only after the
visibility timeout, an hour by default). :class:`StrandedMessages` moves both kinds
to queues of workers that are up, with Lua scripts that move one message at a time, so
a message is never lost nor doubled by the move itself.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Collection, Sequence
from functools import cache
from importlib import resources
from typing import Any

from rfqueue.brokers.base import Chooser
from rfqueue.brokers.redis_layout import BrokerLayout, queue_depths

logger = logging.getLogger(__name__)


#: messages one script call moves at most, so Redis is never blocked for long
MOVE_BATCH = 500


@cache
def _script(name: str) -> str:
    return (resources.files("rfqueue.brokers") / "lua" / f"{name}.lua").read_text()


class StrandedMessages:
    """Moves stranded messages of the queues it is given; every move is atomic."""

    def __init__(self, client: Any, layout: BrokerLayout | None = None) -> None:
        self.client = client
        self.layout = layout or BrokerLayout()
        self._move = client.register_script(_script("move_stranded"))
        self._restore = client.register_script(_script("restore_unacked"))

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each queue, priority lists included."""
        return queue_depths(self.client, queues, lists=self.layout.lists)

    def move(self, source: str, choose: Chooser) -> Counter[str]:
        """Move every message waiting in ``source``, each to the queue ``choose()`` names.

        Returns how many went to each queue. Messages pushed meanwhile by a router
        with an old view are moved too, by a later call.
        """
        moved: Counter[str] = Counter()
        for index, source_list in enumerate(self.layout.lists(source)):
            waiting = int(self.client.llen(source_list))
            plan = Counter(choose() for _ in range(waiting))
            for target, count in plan.items():
                target_list = self.layout.lists(target)[index]
                moved[target] += self._move_list(source_list, target_list, source, target, count)
        return moved

    def _move_list(
        self, source_list: str, target_list: str, source: str, target: str, count: int
    ) -> int:
        done = 0
        while done < count:
            batch = min(MOVE_BATCH, count - done)
            args = [batch, json.dumps(source), json.dumps(target)]
            n = int(self._move(keys=[source_list, target_list], args=args))
            done += n
            if n < batch:  # the list ran dry (another rescuer took the rest)
                break
        return done

    def restore_unacked(
        self, queues: Collection[str], choose: Chooser, held: Collection[str] = ()
    ) -> Counter[str]:
        """Put back now the unacknowledged messages that were delivered from ``queues``.

        Call it only for queues whose worker is dead, or for a worker's own queue with
        ``held`` naming the delivery tags it is still working on: a live worker runs
        what it holds. Each message goes to the queue ``choose()`` names, marked
        ``redelivered`` as kombu marks a restored message.
        """
        restored: Counter[str] = Counter()
        if not queues:
            return restored
        layout = self.layout
        for tag, raw in self.client.hscan_iter(layout.prefix + layout.unacked):
            payload = _unacked_payload(raw, queues)
            if payload is None or tag in held:
                continue
            target = choose()
            _redirect(payload, target)
            key = layout.list_for(target, payload.get("properties", {}).get("priority"))
            keys = [layout.prefix + layout.unacked, layout.prefix + layout.unacked_index, key]
            if int(self._restore(keys=keys, args=[tag, raw, json.dumps(payload)])):
                restored[target] += 1
        return restored


def _unacked_payload(raw: Any, queues: Collection[str]) -> dict[str, Any] | None:
    """The message of an ``unacked`` entry ``[message, exchange, routing_key]`` from ``queues``."""
    try:
        payload, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    # The unacked hash is shared by every app on the broker: skip what is not kombu's.
    if not (isinstance(routing_key, str) and isinstance(payload, dict)):
        return None
    if not isinstance(payload.get("properties", {}), dict) or routing_key not in queues:
        return None
    return payload


def _redirect(payload: dict[str, Any], queue: str) -> None:
    """Mark a restored message redelivered and address it to ``queue``."""
    headers = payload.get("headers")
    if isinstance(headers, dict):
        headers["redelivered"] = True
    properties = payload.setdefault("properties", {})
    info = properties.get("delivery_info")
    if not isinstance(info, dict):
        info = properties["delivery_info"] = {}
    info.update(redelivered=True, routing_key=queue, exchange="")
