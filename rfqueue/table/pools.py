"""Who serves which pool: a snapshot's index of up and registered workers by pool and task.

A pool is a broker queue that workers share (``celery worker -Q video``, or the
default queue). The index is built once per snapshot install (per table version, and
at each full read, which brings heartbeats), so the router's hot path only looks up
dicts: pool -> queues of the workers that consume it, sorted by worker name, and
queue -> the task names its worker registered.

An entry with no pools (written before rfqueue knew pools) counts as serving the
default queue only; one with no known task set counts as having every task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from rfqueue.table.entry import Entry
from rfqueue.table.service import served_everywhere

#: the pool key of entries whose pools are unknown: they serve the default queue
UNKNOWN = ""


@dataclass(frozen=True)
class PoolIndex:
    """Up and registered dedicated queues per pool, and each queue's task names."""

    #: pool -> dedicated queues of its up (routable) workers, by worker name
    up: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: pool -> dedicated queues of every registered worker, whatever its state
    registered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: dedicated queue -> its worker's task names (absent: unknown, every task)
    tasks: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        ordered: Iterable[Entry],
        routable: Callable[[Entry], bool],
        task_sets: Mapping[str, frozenset[str]],
    ) -> PoolIndex:
        """The index of ``ordered`` entries (sorted by worker name)."""
        up: dict[str, list[str]] = {}
        registered: dict[str, list[str]] = {}
        tasks: dict[str, frozenset[str]] = {}
        for entry in ordered:
            is_up = routable(entry)
            for pool in entry.pools or (UNKNOWN,):
                registered.setdefault(pool, []).append(entry.queue)
                if is_up:
                    up.setdefault(pool, []).append(entry.queue)
            names = task_sets.get(entry.tasks) if entry.tasks else None
            if names:
                tasks[entry.queue] = names
        return cls(_frozen(up), _frozen(registered), tasks)

    def serves(self, pool: str, default: str) -> bool:
        """Whether any registered worker consumes ``pool`` (``default``: the default queue)."""
        return pool in self.registered or (pool == default and UNKNOWN in self.registered)

    def up_in(self, pool: str, default: str) -> tuple[str, ...]:
        """Dedicated queues of the up workers of ``pool``."""
        return self._members(self.up, pool, default)

    def registered_in(self, pool: str, default: str) -> tuple[str, ...]:
        """Dedicated queues of every registered worker of ``pool``."""
        return self._members(self.registered, pool, default)

    def having(self, queues: Iterable[str], task_name: str) -> tuple[str, ...]:
        """Those of ``queues`` whose worker has ``task_name`` registered (or may have)."""
        if served_everywhere(task_name):
            return tuple(queues)
        tasks = self.tasks
        return tuple(q for q in queues if q not in tasks or task_name in tasks[q])

    def pools(self) -> tuple[str, ...]:
        """Every pool some registered worker consumes (without the unknown ones)."""
        return tuple(sorted(p for p in self.registered if p != UNKNOWN))

    @staticmethod
    def _members(
        by_pool: Mapping[str, tuple[str, ...]], pool: str, default: str
    ) -> tuple[str, ...]:
        members = by_pool.get(pool, ())
        if pool == default and UNKNOWN in by_pool:
            # Sorting by queue is sorting by worker name: queue = prefix + name.
            return tuple(sorted({*members, *by_pool[UNKNOWN]}))
        return members


def _frozen(lists: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {pool: tuple(queues) for pool, queues in lists.items()}
