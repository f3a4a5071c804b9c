"""How a rescuer picks the up queue a rescued message goes to: the router's policy."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from rfqueue.brokers.base import Chooser
from rfqueue.routing.policies import Policy
from rfqueue.table.pools import PoolIndex


class QueueChooser(Protocol):
    """Picks a target for a rescued message of ``pool``: one of the given up queues, or
    ``pool`` itself when ``whole`` (they are every up worker of the pool) and the policy
    pulls (see :meth:`~rfqueue.routing.policies.Policy.choose_in_pool`)."""

    def __call__(self, queues: Sequence[str], pool: str = "", whole: bool = False) -> str: ...


#: the task name policies see for a rescued message (its real name is not decoded)
RESCUE_TASK_NAME = "rfqueue.worker.rescue"


def policy_chooser(policy: Policy) -> QueueChooser:
    """Choose rescue targets with the router's policy; round robin if it cannot choose.

    A rescued message is not decoded, so the policy sees no task name or arguments
    (a ``hash`` policy, say, cannot keep affinity for it). With ``pull`` a message
    goes back to its pool's queue when every up worker of the pool has its task.
    """
    turn = itertools.count()

    def choose(queues: Sequence[str], pool: str = "", whole: bool = False) -> str:
        try:
            return policy.choose_in_pool(
                pool, whole and bool(pool), queues, RESCUE_TASK_NAME, (), {}, {}
            )
        except Exception:  # a policy that needs the task: spread evenly instead
            return queues[next(turn) % len(queues)]

    return choose


def pool_chooser(
    index: PoolIndex, default: str, pick: QueueChooser, avoid: str | None = None
) -> Chooser:
    """Targets inside a message's pool among up workers that have its task, by ``pick``.

    A message without a pool header (sent before pools) belongs to the ``default``
    queue's pool; one whose task cannot be read may go to any worker of its pool.
    ``avoid``: a leaving worker's own queue; its messages go to other workers' own
    queues, never to a shared pool queue it may still have a read pending on.
    """
    eligible: dict[tuple[str, str], tuple[tuple[str, ...], bool]] = {}

    def choose(task: str, pool: str) -> str | None:
        known = eligible.get((task, pool))
        if known is None:
            members = index.up_in(pool or default, default)
            queues = index.having(members, task) if task else members
            known = eligible[(task, pool)] = (queues, len(queues) == len(members))
        queues, whole = known
        if avoid is not None:
            queues, whole = tuple(q for q in queues if q != avoid), False
        return pick(queues, pool or default, whole) if queues else None

    return choose
