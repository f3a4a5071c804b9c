"""Acknowledged means replicated: a table change returns once enough replicas hold it.

Redis replicates asynchronously. A change the master has confirmed can still vanish
when the master dies before a replica has it and Sentinel promotes that replica.
``WAIT n timeout`` blocks until ``n`` replicas have confirmed everything *the same
connection* wrote before it, so the change and its ``WAIT`` go out in one pipeline:
one connection, and if redis-py re-sends after a broken connection, it re-sends both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.commands.core import Script

from rfqueue.connection import ReplicationError
from rfqueue.settings import Settings

__all__ = ["ReplicaAcks", "ReplicationError"]


@dataclass(frozen=True)
class ReplicaAcks:
    """How many replicas must confirm a change (0: none, no ``WAIT``), and for how long to wait."""

    replicas: int = 0
    timeout: float = 0.5

    @classmethod
    def for_settings(cls, s: Settings) -> ReplicaAcks:
        """What ``s`` asks: ``replica_acks`` (else 1 through Sentinel) in ``replica_timeout``."""
        return cls(s.replicas_wanted, s.replica_timeout)

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script``; with ``replicas``, raise :class:`ReplicationError` unless confirmed."""
        if self.replicas <= 0:
            return script(keys=keys, args=args)
        pipe = script.registered_client.pipeline(transaction=False)
        script(keys=keys, args=args, client=pipe)
        # WAIT's timeout is in milliseconds, and 0 would mean "forever".
        pipe.wait(self.replicas, max(1, round(self.timeout * 1000)))
        reply, acked = pipe.execute()
        if int(acked) < self.replicas:
            raise ReplicationError(int(acked), self.replicas, self.timeout)
        return reply
