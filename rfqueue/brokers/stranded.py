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
from collections.abc import Collection, Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

from rfqueue.brokers.base import Chooser
from rfqueue.brokers.redis_layout import BrokerLayout
from rfqueue.keys import POOL_HEADER

logger = logging.getLogger(__name__)


#: messages one script call moves at most, so Redis is never blocked for long
MOVE_BATCH = 500
#: queues one script call reads the depth of (each one LLEN per priority list)
DEPTH_BATCH = 1000


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
        self._depths = client.register_script(_script("queue_depths"))

    def depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Messages waiting in each queue, priority lists included.

        Summed by a script, one call (one round trip) per thousand queues: at 10,000
        queues a pipeline of one LLEN per priority list took 600 ms of the client's
        time to build and parse (a depth sampler's thread, competing with the producer
        for the GIL), the script 60 ms.
        """
        queues = list(queues)
        layout = self.layout
        head = [layout.prefix, layout.sep, ",".join(str(step) for step in layout.steps)]
        depths: dict[str, int] = {}
        for start in range(0, len(queues), DEPTH_BATCH):
            chunk = queues[start : start + DEPTH_BATCH]
            depths.update(zip(chunk, map(int, self._depths(args=[*head, *chunk])), strict=True))
        return depths

    def move(self, source: str, choose: Chooser) -> Counter[str]:
        """Move the messages waiting in ``source`` that ``choose(task, pool)`` finds a queue for.

        The others stay where they are, in their order. Returns how many went to each
        queue. Messages pushed meanwhile by a router with an old view are moved too, by a
        later call.
        """
        moved: Counter[str] = Counter()
        for index, source_list in enumerate(self.layout.lists(source)):
            moved += self._move_list(source_list, index, source, choose)
        return moved

    def _move_list(
        self, source_list: str, index: int, source: str, choose: Chooser
    ) -> Counter[str]:
        """Look at the list a window at a time from its newest end; move what can go."""
        moved: Counter[str] = Counter()
        kept = 0  # the messages at the newest end that stay
        while True:
            window = self.client.lrange(source_list, kept, kept + MOVE_BATCH - 1)
            plan = _plan(window, choose)
            if plan:
                done, stayed = self._run_plan(source_list, index, source, kept, plan)
                moved += done
                kept += stayed
            else:
                kept += len(window)
            if len(window) < MOVE_BATCH:
                return moved

    def _run_plan(
        self, source_list: str, index: int, source: str, skip: int, plan: dict[str, list[str]]
    ) -> tuple[Counter[str], int]:
        targets = sorted({t for queues in plan.values() for t in queues})
        slot = {target: i + 2 for i, target in enumerate(targets)}  # KEYS index, 1-based
        keys = [source_list, *(self.layout.lists(t)[index] for t in targets)]
        steps = {key: [slot[t] for t in queues] for key, queues in plan.items()}
        args = [MOVE_BATCH, skip, json.dumps(source), json.dumps(steps)]
        reply = json.loads(self._move(keys=keys, args=[*args, *map(json.dumps, targets)]))
        counts = reply["moved"] or []  # Lua writes an empty list as {}
        done = Counter({t: int(n) for t, n in zip(targets, counts, strict=True) if n})
        return done, int(reply["kept"])

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
            unacked = _unacked_payload(raw, queues)
            if unacked is None or tag in held:
                continue
            payload, queue = unacked
            # Nowhere to go (no up worker of its pool has its task): back to its own queue,
            # where it waits to be moved like any stranded message.
            target = choose(*payload_key(payload)) or queue
            _redirect(payload, target)
            key = layout.list_for(target, payload.get("properties", {}).get("priority"))
            keys = [layout.prefix + layout.unacked, layout.prefix + layout.unacked_index, key]
            if int(self._restore(keys=keys, args=[tag, raw, json.dumps(payload)])):
                restored[target] += 1
        return restored


def message_key(raw: str) -> tuple[str, str]:
    """``(task, pool)`` of a queued message, as move_stranded.lua reads it ('' if missing)."""
    try:
        message = json.loads(raw)
    except ValueError:
        return "", ""
    return payload_key(message) if isinstance(message, dict) else ("", "")


def payload_key(message: dict[str, Any]) -> tuple[str, str]:
    """``(task, pool)`` from a decoded kombu message's headers ('' for what is missing)."""
    headers = message.get("headers")
    if not isinstance(headers, dict):
        return "", ""
    task, pool = headers.get("task"), headers.get(POOL_HEADER)
    return (task if isinstance(task, str) else "", pool if isinstance(pool, str) else "")


def _plan(window: Iterable[str], choose: Chooser) -> dict[str, list[str]]:
    """For each key with somewhere to go, a target per message (the policy spreads them)."""
    plan: dict[str, list[str]] = {}
    for raw in window:
        task, pool = message_key(raw)
        target = choose(task, pool)
        if target is not None:
            plan.setdefault(f"{task}\n{pool}", []).append(target)
    return plan


def _unacked_payload(raw: Any, queues: Collection[str]) -> tuple[dict[str, Any], str] | None:
    """The message and queue of an ``unacked`` entry ``[message, exchange, routing_key]``."""
    try:
        payload, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    # The unacked hash is shared by every app on the broker: skip what is not kombu's.
    if not (isinstance(routing_key, str) and isinstance(payload, dict)):
        return None
    if not isinstance(payload.get("properties", {}), dict) or routing_key not in queues:
        return None
    return payload, routing_key


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
