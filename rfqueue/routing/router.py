"""The Celery router: each routed task goes to the queue of one worker that is up.

Use it as a ``task_routes`` entry, by dotted path (``"rfqueue.router.route"``, which
reads the settings of the app that sends the task) or as an instance
(``Router(app)``). It never calls Redis per task: it reads a :class:`Snapshot`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis

from rfqueue.brokers import broker_for
from rfqueue.log import RateLimitedWarning
from rfqueue.routing.policies import Policy, PolicyError, create_policy
from rfqueue.routing.presence import Presence
from rfqueue.routing.routed import RoutedCounts, flush_quietly
from rfqueue.settings import Settings
from rfqueue.table.registry import snapshot_for
from rfqueue.table.snapshot import Snapshot

logger = logging.getLogger(__name__)


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
        self._counts = self.routed.local
        #: the policy's choose(), bound once per process by _start()
        self._choose_queue: Callable[..., str]
        self._flushed_at = float("-inf")
        #: reports this process's snapshot age to the exporter (see routing.presence)
        self._presence: Presence | None = None
        self._start_lock = threading.Lock()

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
        """First call in this process (or after a fork): settings, policy, snapshot."""
        with self._start_lock:
            conf = self._app_conf(task)
            if self._settings is None:
                self._settings = Settings.load(conf)
            if self._policy is None:
                self._policy = create_policy(self._settings)
            snapshot = snapshot_for(self._settings)
            snapshot.ensure_started()
            snapshot.add_hook(self._flush_routed)
            broker = broker_for(conf, self._settings.socket_timeout)
            self._policy.start(snapshot, self.routed, broker.depths if broker else None)
            # Read once per process: the hot path calls these without attribute lookups.
            self._choose_queue, self._counts = self._policy.choose, self.routed.local
            # Published last: the hot path takes this snapshot as "started".
            self._snapshot = snapshot
            return snapshot

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
        options: Mapping[str, Any],
        task: Any = None,
        **_: Any,
    ) -> dict[str, str] | None:
        # The hot path: two attribute reads, the policy and a count; never a Redis call.
        if options.get("queue"):  # the caller's queue wins in Celery: not ours to route or count
            return None
        snapshot = self._snapshot
        if snapshot is None or not snapshot.started:
            snapshot = self._start(task)
        queues = snapshot.up_queues
        if not queues:
            return self._no_worker_up(name, args, kwargs, options)
        try:
            queue = self._choose_queue(queues, name, args, kwargs, options)
        except PolicyError:  # the task's own mistake (no hash key): the sender must hear of it
            raise
        except Exception as exc:  # a policy bug must not break apply_async
            self._policy_failed(name, exc)
            return None
        counts = self._counts.counts
        counts[queue] = counts.get(queue, 0) + 1
        return {"queue": queue}

    def _choose(
        self,
        queues: Sequence[str],
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> dict[str, str] | None:
        try:
            queue = self._choose_queue(queues, name, args, kwargs, options)
        except PolicyError:
            raise
        except Exception as exc:
            self._policy_failed(name, exc)
            return None
        self.routed.add(queue)
        return {"queue": queue}

    def _policy_failed(self, name: str, exc: Exception) -> None:
        self._warn(
            "rfqueue: policy %r failed for %s (%r); using Celery's default route",
            self.settings.policy,
            name,
            exc,
        )

    def _no_worker_up(
        self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> dict[str, str] | None:
        settings = self.settings
        if settings.no_worker_up == "fallback":
            return {"queue": settings.fallback_queue}
        if settings.no_worker_up == "error":
            raise NoWorkerUp(f"rfqueue: no worker is up to run {name} (rfqueue_no_worker_up=error)")
        queues = self.snapshot.all_queues
        if not queues:  # nothing registered yet: leave it to Celery's default queue
            return None
        return self._choose(queues, name, args, kwargs, options)


#: a router for ``task_routes = ["rfqueue.router.route"]``; reads the sending app's settings
route = Router()
