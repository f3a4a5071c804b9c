"""What the router works out once per pool index, app and (pool, task name), not per task.

The queues a task may go to depend only on the snapshot's pool index (a new object
whenever who serves which pool or task changed, see :mod:`rfqueue.table.pools`), the
sending app (its default queue, its queue declarations) and the task's pool and name.
So the router keeps one :class:`Plans` per (index, app routes) and, in it, one
:class:`Plan` per (pool, task name): the eligible queues, whether they are the pool's
whole up membership, and the ``kombu.Queue`` each of them is sent to. A new index or
app makes a new :class:`Plans`: the next route sees the change. The hot path is then
one dict lookup before the policy's choice.
"""

from __future__ import annotations

from kombu.entity import Queue

from rfqueue.routing.destination import AppRoutes
from rfqueue.table.pools import PoolIndex

#: plans kept before the cache starts afresh (task names sent by name can be anything)
MAX_PLANS = 10_000


class Plan:
    """Where tasks of one name in one pool may go, under one pool index."""

    __slots__ = ("_routes", "_targets", "pool", "queues", "served", "whole")

    def __init__(
        self, routes: AppRoutes, pool: str, queues: tuple[str, ...], whole: bool, served: bool
    ) -> None:
        self.pool = pool
        #: the dedicated queues of the workers that may take it, by worker name (none
        #: when the pool is not served)
        self.queues = queues
        #: whether ``queues`` are every up worker of the pool (the pool queue may take it)
        self.whole = whole
        #: whether a registered worker consumes the pool at all (else Celery's route stands)
        self.served = served
        self._routes = routes
        #: queue name -> the kombu.Queue that stands in for the pool (filled on first use)
        self._targets: dict[str, Queue] = {}

    def target(self, queue: str) -> Queue:
        """The ``kombu.Queue`` that sends a task of this pool to ``queue`` (cached)."""
        found = self._targets.get(queue)
        if found is None:
            if len(self._targets) > len(self.queues):  # a policy's own names: keep it bounded
                self._targets.clear()
            found = self._targets[queue] = self._routes.queue(queue, self.pool)
        return found


class Plans:
    """The plans of one pool index and one app's routes."""

    def __init__(self, index: PoolIndex, routes: AppRoutes, prefix: str) -> None:
        self.index = index
        self.routes = routes
        #: a worker's dedicated queue starts with it: never a pool
        self.prefix = prefix
        #: task name -> plan in the default queue's pool, for tasks that name no other
        self.by_default: dict[str, Plan] = {}
        self._by_pool: dict[tuple[str, str, bool], Plan] = {}

    def default(self, name: str) -> Plan:
        """The plan of ``name`` in the app's default queue (what ``by_default`` misses)."""
        plan = self.by_default[name] = self.of(self.routes.default_queue, name)
        return plan

    def of(self, pool: str, name: str, up: bool = True) -> Plan:
        """The plan of ``name`` in ``pool``: among its up workers, or (``up`` false) among
        every registered worker of the pool (then never ``whole``)."""
        key = (pool, name, up)
        plan = self._by_pool.get(key)
        if plan is None:
            if len(self._by_pool) > MAX_PLANS:
                self._by_pool.clear()
                self.by_default.clear()
            plan = self._by_pool[key] = self._make(pool, name, up)
        return plan

    def _make(self, pool: str, name: str, up: bool) -> Plan:
        index, routes = self.index, self.routes
        default = routes.default_queue
        if pool.startswith(self.prefix) or not index.serves(pool, default):
            return Plan(routes, pool, (), False, served=False)
        members = index.up_in(pool, default) if up else index.registered_in(pool, default)
        queues = index.having(members, name)
        whole = up and bool(queues) and len(queues) == len(members)
        return Plan(routes, pool, queues, whole, served=True)
