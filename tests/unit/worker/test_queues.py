"""A worker consumes its own and the control queue, and retries to them, without storing
them in ``app.amqp.queues`` (Celery's integration suite checks that it holds only what
``task_queues`` declares, and runs its worker in the test's app)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery
from celery.exceptions import QueueNotFound
from kombu import Queue

from rfqueue.settings import Settings
from rfqueue.worker.queues import add_own_queues

NODE = "w1@host"
OWN = f"rfqueue.{NODE}"
CONTROL = "rfqueue-control"


def worker_app(**conf: Any) -> Any:
    """An app as a worker with no ``-Q`` has it when the bootstep starts."""
    app = Celery("queues", set_as_current=False)
    app.conf.update({"task_create_missing_queues": False, **conf})
    add_own_queues(app, Settings(), NODE)
    return app


def test_own_queues_are_consumed_not_stored() -> None:
    app = worker_app()
    queues = app.amqp.queues
    assert set(queues) == {"celery"}
    assert set(queues.consume_from) == {"celery", OWN, CONTROL}


def test_a_retry_to_its_own_queue_finds_it_with_create_missing_queues_off() -> None:
    # Given a worker app that may not create queues (a retry names the queue it came from)
    app = worker_app()
    # When Celery expands the retry's destination, before any router runs
    route = app.amqp.router.expand_destination({"queue": OWN})
    # Then it is the queue the worker consumes, and the app's queues did not grow
    assert route["queue"] is app.amqp.queues.consume_from[OWN]
    assert app.amqp.queues[CONTROL].name == CONTROL
    assert set(app.amqp.queues) == {"celery"}


def test_other_names_stay_celerys() -> None:
    app = worker_app()
    with pytest.raises(QueueNotFound):
        app.amqp.router.expand_destination({"queue": "video"})
    relaxed = worker_app(task_create_missing_queues=True)
    assert relaxed.amqp.queues["video"].name == "video"
    assert "video" in relaxed.amqp.queues


def test_add_consumer_keeps_the_declaration_and_stores_nothing() -> None:
    # Given a priority pool and a worker whose own queue stands in for it
    app = worker_app(task_queues=[Queue("celery", queue_arguments={"x-max-priority": 9})])
    queues = app.amqp.queues
    declared = queues.consume_from[OWN]
    assert declared.queue_arguments == {"x-max-priority": 9}
    # When a pause cancels it and remote control's add_consumer (or the enforcer) adds it
    queues.deselect(OWN)
    added = queues.select_add(OWN, exchange=OWN, exchange_type="direct", routing_key=None)
    # Then it is consumed as declared (RabbitMQ refuses other arguments), and not stored
    assert added.queue_arguments == {"x-max-priority": 9}
    assert queues.consume_from[OWN] is added
    assert set(queues) == {"celery"}
