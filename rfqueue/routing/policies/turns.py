"""Turns kept per set of queues: each pool takes its own turns.

The router hands a policy the queues of one pool at a time. One counter shared by
every pool would skew turns when tasks of several pools interleave (with two pools
of two workers, alternating tasks would always pick each pool's first worker). So a
policy counts turns per set of queues: by the tuple's identity on the hot path (the
router hands out the same tuple for a pool until the table changes), and by its
value when a new tuple comes, so that an equal set keeps its rotation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

#: distinct tuples remembered before starting afresh (a table change makes new ones)
MAX_SETS = 1024


class Turns:
    """``next(queues)``: the next turn number for this set of queues (thread-safe enough:
    ``next()`` on an ``itertools.count`` is atomic under the GIL; a lost race on a dict
    only makes one more counter for a moment)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Sequence[str], itertools.count[int]]] = {}
        self._by_value: dict[tuple[str, ...], itertools.count[int]] = {}

    def next(self, queues: Sequence[str]) -> int:
        known = self._by_id.get(id(queues))
        if known is not None and known[0] is queues:
            return next(known[1])
        return next(self._counter(queues))

    def _counter(self, queues: Sequence[str]) -> itertools.count[int]:
        if len(self._by_id) > MAX_SETS:
            self._by_id, self._by_value = {}, {}
        key = tuple(queues)
        counter = self._by_value.get(key)
        if counter is None:
            counter = self._by_value[key] = itertools.count()
        self._by_id[id(queues)] = (queues, counter)  # keeps the tuple alive: ids stay unique
        return counter
