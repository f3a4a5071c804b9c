"""The worker's part: a dedicated queue, and the bootstep that starts the enforcer and rescuer.

Each worker consumes ``queue_prefix + nodename`` besides whatever Celery selects, and
rfqueue's control queue. The consumer bootstep :class:`RfqueueStep` starts the
:class:`~rfqueue.worker.enforcer.Enforcer` (registration, heartbeat, self-enforcement)
and the :class:`~rfqueue.worker.rescue.Rescuer`, and marks the worker down when it
stops.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps, signals

from rfqueue.brokers import broker_for
from rfqueue.settings import Settings
from rfqueue.table.registry import snapshot_for
from rfqueue.worker.enforcer import Enforcer
from rfqueue.worker.queues import add_own_queues
from rfqueue.worker.remote import ENFORCER_ATTRIBUTE
from rfqueue.worker.rescue import Rescuer, start_rescuer

logger = logging.getLogger(__name__)


def is_test_worker(controller: Any) -> bool:
    """Whether Celery's test helpers built this worker (``start_worker``): a name that
    comes and goes with a test (``gen<pid>@host``)."""
    from celery.contrib.testing.worker import TestWorkController

    return isinstance(controller, TestWorkController)


def running_delivery_tags() -> set[str]:
    """Delivery tags of the tasks this worker's pool is running now."""
    from celery.worker.state import active_requests

    return _tags(tuple(active_requests))


def started_delivery_tags() -> set[str]:
    """Delivery tags of what the pool runs or will run: the running tasks, and those
    already handed to it (Celery keeps the pool's answer as ``_apply_result``). The
    others (waiting for a free process, or for their ETA) a stopping worker never starts.
    """
    from celery.worker.state import active_requests, reserved_requests

    handed = [r for r in tuple(reserved_requests) if getattr(r, "_apply_result", None)]
    return _tags([*tuple(active_requests), *handed])


def _tags(requests: Any) -> set[str]:
    tags = set()
    for request in requests:
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if isinstance(tag, str):
            tags.add(tag)
    return tags


class RfqueueStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer bootstep: starts the enforcer and the rescuer, marks the worker down at the end."""

    requires = {"celery.worker.consumer.tasks:Tasks"}
    name = "rfqueue"

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.settings = Settings.load(c.app.conf)
        # Its dedicated queue and the control queue, consumed from the first read: also in
        # a worker that sends no celeryd_after_setup (celery.contrib.testing's start_worker)
        add_own_queues(c.app, self.settings, c.hostname)
        #: a test worker (celery.contrib.testing) leaves no entry behind when it stops
        self.forget_at_exit = is_test_worker(c.controller)
        #: the pool of messages that carry none: the app's default queue
        self.default_pool = str(c.app.conf.task_default_queue or "celery")
        snapshot = snapshot_for(self.settings)
        self.enforcer = Enforcer(self.settings, c.hostname, snapshot, self.default_pool)
        setattr(c, ENFORCER_ATTRIBUTE, self.enforcer)  # for remote control's rfqueue_sync
        # Now, before the pool forks: its children count into the same shared counters.
        self.enforcer.outcomes.connect()
        #: None for a transport rfqueue cannot look into: no rescue there
        self.broker = broker_for(c.app.conf, self.settings.socket_timeout)
        self.rescuer: Rescuer | None = None
        self._started = False
        # The earliest word of a shutdown by signal (SIGTERM, SIGINT, SIGQUIT), sent from
        # the signal handler; a remote `shutdown` only passes through stop() below.
        signals.worker_shutting_down.connect(
            self._on_shutting_down,
            sender=c.hostname,
            weak=False,
            dispatch_uid=f"rfqueue-{c.hostname}",
        )

    def start(self, c: Any) -> None:
        self.enforcer.attach(c)
        if self.broker is not None:
            # First the handoff's put back, which drops the unacked record of a write that
            # landed as it timed out; the reclaim would otherwise restore that one too.
            self.broker.consumer_started(c, self.enforcer.queue)
        if not self._started:
            self._start_rescue()
        elif self.rescuer is not None:  # a reconnect: Celery lost what it had not started
            self.rescuer.reclaim(self.enforcer.queue, held=running_delivery_tags())
        self._started = True

    def _start_rescue(self) -> None:
        """Once per worker: the rescuer, and the broker's hook for a resumed queue."""
        if self.broker is None:
            logger.info("rfqueue: no rescue on this broker (Redis or RabbitMQ only)")
            return
        self.enforcer.on_resume = self.broker.consumer_resumed
        self.rescuer = start_rescuer(
            self.settings,
            self.enforcer.snapshot,
            self.broker,
            self.enforcer.queue,
            self.default_pool,
        )

    def _on_shutting_down(self, **_: Any) -> None:
        self.enforcer.begin_drain()

    def stop(self, c: Any) -> None:
        """Drain when the worker is stopping; a reconnect (the worker stays) does nothing.

        Every shutdown (a signal, ``celery control shutdown``) stops the consumer's steps
        before the pool finishes its tasks; a reconnect restarts them while the
        consumer's blueprint still runs.
        """
        if c.blueprint is not None and c.blueprint.state in (bootsteps.CLOSE, bootsteps.TERMINATE):
            self.enforcer.begin_drain()
            # The event loop has stopped: what it took but did not start goes elsewhere now.
            if self.broker is not None:
                self.broker.consumer_leaving(c)
            if self.rescuer is not None:
                self.rescuer.reclaim(self.enforcer.queue, started_delivery_tags(), leaving=True)

    def terminate(self, c: Any) -> None:
        """A cold shutdown: drain as well (the worker marks itself down when it is gone)."""
        self.stop(c)

    def shutdown(self, c: Any) -> None:
        if self.rescuer is not None:
            self.rescuer.stop()
        self.enforcer.shutdown(forget=self.forget_at_exit)
        self.enforcer.outcomes.disconnect()  # in-process test workers come and go
        if self.broker is not None:
            self.broker.close()

    def info(self, c: Any) -> dict[str, Any]:
        return {"rfqueue": self.enforcer.info()}
