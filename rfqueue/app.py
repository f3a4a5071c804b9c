"""``install(app)``: the few lines that add rfqueue to a Celery app, and the settings it wants.

:func:`recommended_config` is the one source of the Celery settings rfqueue's
guarantees rest on (the reference app, the demo's app and the README's snippet all use
it); :func:`install` adds the router, the chaos task and the worker bootsteps.
"""

from __future__ import annotations

import ssl
import sys
from typing import Any

from celery import signals

from rfqueue.brokers import BrokerRefused, broker_for
from rfqueue.chaos import chaos_overrides, run_tick
from rfqueue.control import purging_worker_queues
from rfqueue.keys import Keys
from rfqueue.routing.destination import direct_queue
from rfqueue.routing.router import Router
from rfqueue.routing.unpin import Unpin
from rfqueue.settings import Settings
from rfqueue.worker.inbound import MalformedMessageGuard
from rfqueue.worker.step import RfqueueStep

CHAOS_TASK = "rfqueue.chaos"
CHAOS_SCHEDULE_ENTRY = "rfqueue-chaos"


def recommended_config(broker_url: str) -> dict[str, Any]:
    """The Celery settings rfqueue's promises assume, for a broker at ``broker_url``.

    ``app.conf.update(rfqueue.recommended_config(url))``, then your own settings. JSON
    only; each pool process holds at most the task it runs and acknowledges it after it
    ran, so a paused worker finishes at most ``concurrency`` tasks and a dead one's task
    runs again elsewhere; publishing rides out a Redis restart of a few seconds; a host
    cut off from the broker is noticed in seconds (kombu's ``health_check_interval`` on
    Redis, ``broker_heartbeat`` on RabbitMQ); a bare ``rediss://`` URL checks the
    server's certificate, as redis-py does for the table.
    """
    redis_broker = broker_url.startswith(("redis://", "rediss://", "sentinel://"))
    config: dict[str, Any] = {
        # JSON only: a pickle payload is refused by every consumer.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # A pause is only as quick as the prefetch is small.
        "worker_prefetch_multiplier": 1,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_disable_prefetch": redis_broker,
        # About 10 s of retries, then kombu's OperationalError instead of a hang.
        "task_publish_retry_policy": {
            "max_retries": 12,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "broker_connection_retry_on_startup": True,
        # RabbitMQ requeues what a cut-off worker held after two missed heartbeats.
        "broker_heartbeat": 10,
        # A cut-off host's BRPOP waits on a lost reply until kombu's health check: 3 s
        # instead of 25 s makes a worker deaf for seconds, not up to about 51 s.
        "broker_transport_options": {
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
            "health_check_interval": 3,
        },
    }
    if broker_url.startswith("rediss://") and "ssl_cert_reqs=" not in broker_url:
        # kombu alone would use a bare rediss:// URL without checking the certificate.
        config["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return config


def check_broker_login(conf: Any, settings: Settings) -> None:
    """Stop a starting worker with one line (exit 2) when the broker refuses its login."""
    broker = broker_for(conf, settings.socket_timeout)
    if broker is None:
        return
    try:
        broker.check_login()
    except BrokerRefused as exc:
        print(f"rfqueue: error: broker_url: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def install(app: Any, **settings: Any) -> Settings:
    """Route ``app``'s tasks through rfqueue and make its workers take part.

    Call it after the app is configured. Keyword arguments set ``rfqueue_<name>``
    settings; ``RFQUEUE_<NAME>`` environment variables override them. It puts the
    router in front of your ``task_routes``, which it asks for each task's pool (your
    routes and ``queue=`` choose the pool, rfqueue the worker in it; a retry is routed
    afresh, see :mod:`rfqueue.routing.unpin`), registers the
    ``rfqueue.chaos`` task, adds it to ``beat_schedule`` when ``chaos_enabled``, and
    adds the worker bootsteps (rfqueue's own, and the guard that drops queue items that
    are no kombu message, see :mod:`rfqueue.inbound`). Raises
    :class:`~rfqueue.settings.SettingsError` for a bad setting.
    """
    for name, value in settings.items():
        app.conf[f"rfqueue_{name}"] = value
    resolved = Settings.load(app.conf)
    routes = app.conf.task_routes
    routes = list(routes) if isinstance(routes, (list, tuple)) else ([routes] if routes else [])
    # Unpin first: a retry's pin to a dedicated queue would win over every router.
    # The chaos tick goes to the control queue every worker consumes, never behind a backlog.
    # Then the router, which asks your routes (after it) for each task's pool and picks an
    # up worker of that pool (see rfqueue.routing.destination).
    # A Queue, not a name: a producer with task_create_missing_queues=False sends it too.
    control = {CHAOS_TASK: {"queue": direct_queue(Keys(resolved.namespace).control_queue)}}
    app.conf.task_routes = [Unpin(resolved.queue_prefix), control, Router(app), *routes]

    def chaos(**overrides: Any) -> dict[str, Any]:
        """One tick of the random-failure job (see :mod:`rfqueue.chaos`)."""
        return run_tick(app, overrides)

    # Not shared: a shared task is bound to every app of the process, all running the
    # first app's closure (its settings, its namespace), with a DuplicateTaskNameWarning.
    app.task(name=CHAOS_TASK, ignore_result=True, acks_late=False, shared=False)(chaos)
    if resolved.chaos_enabled:
        schedule = dict(app.conf.beat_schedule or {})
        schedule[CHAOS_SCHEDULE_ENTRY] = {
            "task": CHAOS_TASK,
            "schedule": resolved.chaos_interval,
            # A tick that waited longer than one interval would act on an old plan.
            "options": {"expires": resolved.chaos_interval},
            # The tick runs on whichever worker takes it: it carries beat's chaos settings.
            "kwargs": chaos_overrides(resolved),
        }
        app.conf.beat_schedule = schedule

    # app.control.purge() empties the workers' own queues too (`celery purge` does not).
    app.control.purge = purging_worker_queues(app, app.control.purge)

    app.steps["consumer"].add(RfqueueStep)
    app.steps["consumer"].add(MalformedMessageGuard)

    def after_setup(sender: str, instance: Any, **_: Any) -> None:
        # The queues are added by the bootstep (a test worker sends no such signal).
        if instance.app is app:
            check_broker_login(app.conf, Settings.load(app.conf))

    # Held weakly by the signal and strongly by the app: the receiver goes with the app,
    # which nothing of the process's keeps alive.
    app._rfqueue_after_setup = after_setup
    signals.celeryd_after_setup.connect(after_setup)
    return resolved
