"""``install(app)``: the few lines that add rfqueue to a Celery app."""

from __future__ import annotations

import sys
from typing import Any

from celery import signals

from rfqueue.brokers import BrokerRefused, broker_for
from rfqueue.chaos import chaos_overrides, run_tick
from rfqueue.inbound import MalformedMessageGuard
from rfqueue.keys import Keys
from rfqueue.router import Router
from rfqueue.settings import Settings
from rfqueue.unpin import Unpin
from rfqueue.worker import RfqueueStep, add_dedicated_queue

CHAOS_TASK = "rfqueue.chaos"
CHAOS_SCHEDULE_ENTRY = "rfqueue-chaos"


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
    settings; ``RFQUEUE_<NAME>`` environment variables override them. It appends the
    router to ``task_routes`` (your own routes keep priority; a retry is routed afresh,
    see :mod:`rfqueue.unpin`), registers the
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
    control = {CHAOS_TASK: {"queue": Keys(resolved.namespace).control_queue}}
    app.conf.task_routes = [Unpin(resolved.queue_prefix), control, *routes, Router(app)]

    def chaos(**overrides: Any) -> dict[str, Any]:
        """One tick of the random-failure job (see :mod:`rfqueue.chaos`)."""
        return run_tick(app, overrides)

    app.task(name=CHAOS_TASK, ignore_result=True, acks_late=False)(chaos)
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

    app.steps["consumer"].add(RfqueueStep)
    app.steps["consumer"].add(MalformedMessageGuard)

    def after_setup(sender: str, instance: Any, **_: Any) -> None:
        if instance.app is app:
            settings = Settings.load(app.conf)
            check_broker_login(app.conf, settings)
            add_dedicated_queue(instance, settings)

    signals.celeryd_after_setup.connect(after_setup, weak=False)
    return resolved
