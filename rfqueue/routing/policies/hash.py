"""``hash``: consistent hashing on a key taken from the task, for cache affinity.

``rfqueue_hash_key`` names the key: a keyword argument (``user_id``; the task must be
sent with it as a keyword) or a position (``0`` for the first argument). Every
registered queue, whatever its state, owns :data:`VNODES` points on a hash ring; a
key goes to the owner of the first point at or after its hash. When that owner is
not up the walk goes on to the next point whose owner is up, so a pause moves only
the paused worker's keys, and they return when it comes back. Celery's and
rfqueue's own tasks (``celery.*``, ``rfqueue.*``) carry no key: they take turns.
A user task sent without the key raises :class:`~rfqueue.routing.policies.PolicyError`.

The ring is built off the hot path: when the policy starts, and then by the snapshot's
refresh thread (a hook, held weakly) when the registered workers have changed (a ring
of 10,000 workers takes seconds to hash). A task costs one hash and a binary search,
O(log n); the walk past owners that are not up is as long as the run of them on the ring.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.routing.policies import Policy, PolicyError
from rfqueue.routing.policies.turns import Turns

if TYPE_CHECKING:
    from rfqueue.brokers import DepthReader
    from rfqueue.routing.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.table.snapshot import Snapshot

#: points per queue on the ring: more points, more even shares
VNODES = 160
#: tasks that are not the application's: they have no key to hash
KEYLESS_PREFIXES = ("celery.", "rfqueue.")


def stable_hash(data: str) -> int:
    """A 64-bit hash that is the same in every process (``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Points of every queue on a 64-bit ring, sorted, with their owners."""

    def __init__(self, queues: Sequence[str], vnodes: int = VNODES) -> None:
        self.queues = tuple(queues)
        points = sorted((stable_hash(f"{q}#{i}"), q) for q in self.queues for i in range(vnodes))
        #: 8 bytes a point (a list of ints takes about 36): 1.6 million for 10,000 workers
        self.points = array("Q", (p for p, _ in points))
        self.owners = [q for _, q in points]

    def owner(self, key: str, up: frozenset[str] | set[str]) -> str | None:
        """The first owner at or after ``key``'s point that is in ``up``; None if none is."""
        if not self.points:
            return None
        start = bisect.bisect_left(self.points, stable_hash(key))
        n = len(self.owners)
        for step in range(n):
            owner = self.owners[(start + step) % n]
            if owner in up:
                return owner
        return None


class HashPolicy(Policy):
    """Same key, same worker, while that worker is up."""

    name = "hash"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        key = settings.hash_key.strip()
        self.position: int | None = int(key) if key.isdigit() else None
        self.keyword = key
        self.snapshot: Snapshot | None = None
        self._ring = HashRing(())
        self._up: tuple[Sequence[str], frozenset[str]] = ((), frozenset())
        self._turns = Turns()

    @classmethod
    def check(cls, settings: Settings) -> None:
        """The hash policy needs ``hash_key``."""
        if not settings.hash_key.strip():
            from rfqueue.settings import SettingsError

            raise SettingsError(
                "rfqueue_hash_key: policy 'hash' needs the task argument to hash on "
                "(a keyword name, or a position such as 0)"
            )

    def start(
        self, snapshot: Snapshot, routed: RoutedCounts, depths: DepthReader | None = None
    ) -> None:
        """Build the ring over every registered queue; rebuild it when they change."""
        self.snapshot = snapshot
        self._follow()
        snapshot.add_hook(self._follow)  # once per process: a fork drops the parent's hooks

    def _follow(self) -> None:
        """Snapshot hook (refresh thread): a new ring when the registered queues changed."""
        everyone = self.snapshot.all_queues if self.snapshot is not None else ()
        if everyone != self._ring.queues:
            self._ring = HashRing(everyone)

    def key_of(self, task_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """The task's key, or :class:`PolicyError` naming what is missing."""
        if self.position is not None:
            if self.position < len(args):
                return args[self.position]
            raise PolicyError(
                f"rfqueue_hash_key: {task_name} was sent with {len(args)} positional "
                f"arguments, so it has no argument {self.position} to hash on"
            )
        if self.keyword in kwargs:
            return kwargs[self.keyword]
        raise PolicyError(
            f"rfqueue_hash_key: {task_name} was sent without the keyword argument "
            f"{self.keyword!r} to hash on (pass it by keyword, or name its position)"
        )

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        if task_name.startswith(KEYLESS_PREFIXES):
            return queues[self._turns.next(queues) % len(queues)]
        key = str(self.key_of(task_name, args, kwargs))
        owner = self._ring_of(queues).owner(key, self._up_set(queues))
        return owner if owner is not None else queues[stable_hash(key) % len(queues)]

    def _ring_of(self, queues: Sequence[str]) -> HashRing:
        if self.snapshot is None and tuple(queues) != self._ring.queues:  # never started
            self._ring = HashRing(queues)
        return self._ring

    def _up_set(self, queues: Sequence[str]) -> frozenset[str]:
        seen, up = self._up
        if queues is not seen:
            up = frozenset(queues)
            self._up = (queues, up)
        return up
