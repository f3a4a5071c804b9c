"""``pull`` (the default): a task goes to its pool's shared queue, and Celery's pull balances.

Every up worker of a pool consumes the pool's queue (``celery worker -Q video``, or the
default queue), and a paused or down worker consumes none of its queues. So when every
up worker of the task's pool has the task registered, the policy answers with the pool
queue itself: each worker takes the next task when it is free, a slow worker simply
takes fewer, and a long task holds up only the worker running it. That is plain
Celery's balance (the study in docs/balancing.md: within 1.00x of a shared queue in
p50 and p99, where every push design was 1.7x to 66x worse in p99).

When only some up workers of the pool have the task (their task sets differ), the
pool queue would hand it to a worker that drops it as unregistered: then the workers
that have it take turns through their dedicated queues (round robin). A worker killed
with tasks it took from the pool queue gets them put back by the rescue: the worker
records them under its own queue (:mod:`rfqueue.brokers.claim`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rfqueue.routing.policies.round_robin import RoundRobinPolicy


class PullPolicy(RoundRobinPolicy):
    """The pool's queue when every up worker of the pool has the task; else round robin."""

    name = "pull"

    def choose_in_pool(
        self,
        pool: str,
        whole: bool,
        queues: Sequence[str],
        task_name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> str:
        if whole:
            return pool
        return self.choose(queues, task_name, args, kwargs, options)
