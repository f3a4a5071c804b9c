"""The Celery router: each routed task goes to the queue of one up worker of its pool.

Use it as a ``task_routes`` entry, by dotted path (``"rfqueue.router.route"``, which
reads the settings of the app that sends the task) or as an instance
(``Router(app)``). The routes after it, ``queue=`` and the default queue decide a
task's pool (:mod:`~rfqueue.routing.destination`); the policy picks, among the up
workers of that pool that have the task registered, the one whose own queue gets it.
It never calls Redis per task: it reads a :class:`Snapshot` and its pool index, and
works out where a (pool, task name) may go once per pool index (:mod:`.plans`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import redis

from rfqueue.brokers import broker_for
from rfqueue.log import RateLimitedWarning
from rfqueue.routing.accepted import count_when_published, expect
from rfqueue.routing.destination import AppRoutes, to_worker
from rfqueue.routing.plans import Plan, Plans
from rfqueue.routing.policies import Policy, PolicyError, create_policy
from rfqueue.routing.presence import Presence
from rfqueue.routing.routed import RoutedCounts, flush_quietly
from rfqueue.settings import Settings
from rfqueue.table.registry import snapshot_for
from rfqueue.table.snapshot import Snapshot

logger = logging.getLogger(__name__)

#: seconds between two log lines about the same task name that no up worker has
TELL_INTERVAL = 300.0


class NoWorkerUp(RuntimeError):
    """No worker is up and ``rfqueue_no_worker_up`` is ``error``."""


class Router:
    """Routes every task it is asked about to an up worker's queue, by policy."""

    def __init__(self, app: Any = None, settings: Settings | None = None) -> None:
        self.app = app
        self._settings = settings
        self._policy: Policy | None = None
        self._snapshot: Snapshot | None = None
        self._warn = RateLimitedWarning(logger)
        #: tasks this router sent to each queue; flushed to Redis by the snapshot's thread
        self.routed = RoutedCounts()
        #: the policy's choose_in_pool(), bound once per process by _start()
        self._choose_queue: Callable[..., str]
        self._flushed_at = float("-inf")
        #: reports this process's snapshot age to the exporter (see routing.presence)
        self._presence: Presence | None = None
        self._start_lock = threading.Lock()
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _call(ref, Router._after_fork_in_child))
        #: a worker's dedicated queue starts with it: never a pool (set by _start)
        self._prefix = Settings.queue_prefix
        #: the last sending app and its routes after this router
        self._app_routes: tuple[Any, AppRoutes] | None = None
        #: where each (pool, task name) may go, for the current pool index and app
        self._plans: Plans | None = None
        #: task name -> when the router last said why it had no up worker for it
        self._told: dict[str, float] = {}

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load(self._app_conf(None))
        return self._settings

    def _app_conf(self, task: Any) -> Mapping[str, Any]:
        app = self.app or getattr(task, "app", None)
        if app is None:
            from celery import current_app

            app = current_app
        return app.conf  # type: ignore[no-any-return]

    def _start(self, task: Any) -> Snapshot:
        """First call in this process (or after a fork): settings, policy, snapshot.

        The lock covers making the settings and the policy only, never a Redis round
        trip (the snapshot's and the depth sampler's first reads come after it), and a
        forked child gets a new one: a prefork child forked while another thread was
        here would otherwise wait on it forever at its first route.
        """
        conf = self._app_conf(task)
        with self._start_lock:
            if self._settings is None:
                self._settings = Settings.load(conf)
            if self._policy is None:
                self._policy = create_policy(self._settings)
            settings, policy = self._settings, self._policy
        self._prefix = settings.queue_prefix
        snapshot = snapshot_for(settings)
        snapshot.ensure_started()
        snapshot.add_hook(self._flush_routed)
        broker = broker_for(conf, settings.socket_timeout)
        policy.start(snapshot, self.routed, broker.depths if broker else None)
        # Read once per process: the hot path calls these without attribute lookups.
        self._choose_queue = policy.choose_in_pool
        count_when_published()
        # Published last: the hot path takes this snapshot as "started".
        self._snapshot = snapshot
        return snapshot

    def _after_fork_in_child(self) -> None:
        self._start_lock = threading.Lock()

    def _flush_routed(self) -> None:
        """Snapshot hook: add the routed counts to Redis and say how fresh the snapshot is,
        at most every refresh_interval."""
        snapshot, now = self._snapshot, time.monotonic()
        if snapshot is None or now - self._flushed_at < self.settings.refresh_interval:
            return
        self._flushed_at = now
        table = snapshot.table
        flush_quietly(self.routed, table.client, table.keys.routed, self._warn)
        if snapshot.loaded:
            if self._presence is None or self._presence.client is not table.client:
                self._presence = Presence(table.client, table.keys.routers)
            try:
                self._presence.report(
                    snapshot.read_at, snapshot.refresh_interval, snapshot.table.now()
                )
            except (redis.RedisError, OSError) as exc:
                self._warn("rfqueue: cannot report this router's snapshot age: %s", exc)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot or self._start(None)

    def __call__(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: MutableMapping[str, Any],
        task: Any = None,
        **_: Any,
    ) -> Any:
        # The hot path: a plan looked up, the policy and a note for the count; never Redis.
        snapshot = self._snapshot
        if snapshot is None or not snapshot.started:
            snapshot = self._start(task)
        routes = self._routes_of(task)
        plans = self._plans
        if plans is None or plans.index is not snapshot.pools or plans.routes is not routes:
            plans = self._plans = Plans(snapshot.pools, routes, self._prefix)
        if not options and not routes.later:
            # No queue=, no retry's pool header, no later route: the default queue's pool.
            plan = plans.by_default.get(name) or plans.default(name)
            if plan.queues:
                return self._choose(plan, name, args, kwargs, options, None)
        route = routes.later_route(name, args, kwargs, options, task) if routes.later else None
        pool = routes.logical_queue(options, route)
        if pool is None:
            return route  # exchange routing: not ours to route
        plan = plans.of(pool, name)
        if not plan.served:
            return route  # a worker's own queue, or one no registered worker consumes
        if not plan.queues:
            return self._no_worker_up(plans, pool, name, args, kwargs, options, route)
        return self._choose(plan, name, args, kwargs, options, route)

    def _routes_of(self, task: Any) -> AppRoutes:
        """The sending app's routes after this router, and its default queue (cached)."""
        app = self.app or getattr(task, "app", None)
        if app is None:
            from celery import current_app

            app = current_app._get_current_object()
        last = self._app_routes
        if last is not None and last[0] is app:  # task_routes are never swapped at run time
            return last[1]
        routes = AppRoutes.of(app, self)
        self._app_routes = (app, routes)
        return routes

    def _choose(
        self,
        plan: Plan,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: MutableMapping[str, Any],
        route: Any,
    ) -> Any:
        pool = plan.pool
        try:
            queue = self._choose_queue(pool, plan.whole, plan.queues, name, args, kwargs, options)
        except PolicyError:  # the task's own mistake (no hash key): the sender must hear of it
            raise
        except Exception as exc:  # a policy bug must not break apply_async
            self._policy_failed(name, exc)
            return route
        expect(self.routed, queue)  # counted once Celery has published it (routing.accepted)
        return to_worker(plan.target(queue), pool, options, route)

    def _policy_failed(self, name: str, exc: Exception) -> None:
        self._warn(
            "rfqueue: policy %r failed for %s (%r); using Celery's default route",
            self.settings.policy,
            name,
            exc,
        )

    def _no_worker_up(
        self,
        plans: Plans,
        pool: str,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: MutableMapping[str, Any],
        route: Any,
    ) -> Any:
        """No up worker of ``pool`` has ``name``: never send it to one that would drop it."""
        settings = self.settings
        if settings.no_worker_up == "fallback":
            self._tell(name, "no up worker of pool %r has %s registered; sent to %r",
                       pool, name, settings.fallback_queue)  # fmt: skip
            return {"queue": plans.routes.queue(settings.fallback_queue, pool)}
        if settings.no_worker_up == "error":
            raise NoWorkerUp(
                f"rfqueue: no worker is up to run {name} in pool {pool!r} "
                "(rfqueue_no_worker_up=error)"
            )
        plan = plans.of(pool, name, up=False)
        if not plan.queues:
            self._tell(name, "no worker of pool %r has %s registered; left to Celery's route",
                       pool, name)  # fmt: skip
            return route
        self._tell(name, "no up worker of pool %r has %s registered; spread over its %d "
                   "registered workers that have it", pool, name, len(plan.queues))  # fmt: skip
        return self._choose(plan, name, args, kwargs, options, route)

    def _tell(self, name: str, message: str, *args: object) -> None:
        """Log why ``name`` was not routed to an up worker, once per task name per interval."""
        now = time.monotonic()
        if now - self._told.get(name, float("-inf")) >= TELL_INTERVAL:
            self._told[name] = now
            logger.warning("rfqueue: " + message, *args)


def _call(ref: weakref.ref[Router], method: Callable[[Router], None]) -> None:
    router = ref()
    if router is not None:
        method(router)


#: a router for ``task_routes = ["rfqueue.router.route"]``; reads the sending app's settings
route = Router()
