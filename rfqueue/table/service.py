"""What a worker serves: the pools (queues) it consumes and the tasks it has registered.

A worker's entry carries its pools as a list and its task names as a short digest;
the names themselves live once per distinct set in ``Keys.task_set(digest)``, written
before any entry names the digest. Equal task sets (every worker of one deployment)
share one key, so the table stays small and a snapshot reads each set once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from rfqueue.keys import POOL_HEADER

__all__ = ["EVERYWHERE", "POOL_HEADER", "Service", "pools_or_default", "served_everywhere",
           "task_digest"]  # fmt: skip

#: task names every worker serves, whatever it registered: Celery's and rfqueue's own
EVERYWHERE = ("celery.", "rfqueue.")


def task_digest(names: Iterable[str]) -> str:
    """16 hex characters naming a set of task names (the same in every process)."""
    text = "\n".join(sorted(set(names)))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def served_everywhere(task_name: str) -> bool:
    """Whether every worker runs ``task_name`` (a Celery built-in, or rfqueue's own)."""
    return task_name.startswith(EVERYWHERE)


@dataclass(frozen=True)
class Service:
    """A worker's pools (sorted, without duplicates) and its registered task names."""

    pools: tuple[str, ...] = ()
    tasks: frozenset[str] = frozenset()

    @classmethod
    def of(cls, pools: Iterable[str] = (), tasks: Iterable[str] = ()) -> Service:
        return cls(tuple(sorted(set(pools))), frozenset(tasks))

    @property
    def digest(self) -> str:
        """The entry's ``tasks`` field; '' when no task names are known."""
        return task_digest(self.tasks) if self.tasks else ""

    def script_args(self) -> list[str]:
        """The two arguments register.lua and heartbeat.lua take last: pools, digest."""
        return [json.dumps(list(self.pools)), self.digest]


def pools_or_default(pools: Collection[str], default: str) -> tuple[str, ...]:
    """An entry's pools, with an unknown set (an entry from before pools) as the default queue."""
    return tuple(pools) if pools else (default,)
