"""``least_loaded``: each task goes to the up worker whose queue is shortest right now.

"Right now" means at the last read of a :class:`~rfqueue.depth.DepthSampler`, which a
background thread refreshes every ``depth_interval`` seconds; priority lists count.
Queues of equal depth take turns. Between two reads every task of this router sees
the same depths, so a burst shorter than ``depth_interval`` is spread only over the
queues that were shortest at the read: ``p2c`` counts its own routes to avoid that.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rfqueue.depth import DepthSampler
from rfqueue.policies import Policy

if TYPE_CHECKING:
    from rfqueue.routed import RoutedCounts
    from rfqueue.settings import Settings
    from rfqueue.snapshot import Snapshot


def depth_sampler(snapshot: Snapshot, settings: Settings) -> DepthSampler:
    """A sampler of every registered queue, on the table's Redis (the broker's, by default)."""
    return DepthSampler(snapshot.table.client, lambda: snapshot.all_queues, settings.depth_interval)


class LeastLoadedPolicy(Policy):
    """Smallest sampled depth wins; ties take turns."""

    name = "least_loaded"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.sampler: DepthSampler | None = None
        self._turn = itertools.count()
        #: (sample generation, queues) -> the shortest of those queues, kept until either moves
        self._shortest: tuple[int, Sequence[str], list[str]] = (-1, (), [])

    def start(self, snapshot: Snapshot, routed: RoutedCounts) -> None:
        """Start sampling the depths of every registered queue."""
        if self.sampler is None:
            self.sampler = depth_sampler(snapshot, self.settings)
        self.sampler.ensure_started()

    def choose(
        self,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        generation, seen, tied = self._shortest
        sampler = self.sampler
        now = sampler.generation if sampler is not None else 0
        if now != generation or queues is not seen:
            depths = sampler.depths if sampler is not None else {}
            least = min(depths.get(q, 0) for q in queues)
            tied = [q for q in queues if depths.get(q, 0) == least]
            self._shortest = (now, queues, tied)
        return tied[next(self._turn) % len(tied)]
