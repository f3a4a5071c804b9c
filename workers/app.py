"""The reference Celery app. Start it with plain Celery commands:

    celery -A workers.app worker --hostname w1@%h
    celery -A workers.app beat
    celery -A workers.app flower

Configuration comes from the environment: ``CELERY_BROKER_URL`` and any
``RFQUEUE_*`` setting (see the README).
"""

from __future__ import annotations

import os
import ssl
import sys

from celery import Celery

import rfqueue

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")

app = Celery("workers", broker=broker_url, include=["workers.tasks"])
app.conf.update(
    # JSON only: a pickle payload is refused by every consumer.
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_accept_content=["json"],
    task_ignore_result=True,
    # A pause is only as quick as the prefetch is small: each pool process holds at
    # most the task it runs, acknowledged after it ran, so a cancelled consumer
    # finishes at most `concurrency` tasks and nothing waits in its memory.
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_disable_prefetch=broker_url.startswith(("redis://", "rediss://")),
    # Publishing rides out a Redis restart of a few seconds, then gives up (about 10 s)
    # with kombu's OperationalError instead of hanging on a dead Redis.
    task_publish_retry_policy={
        "max_retries": 12,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    },
    broker_connection_retry_on_startup=True,
    # RabbitMQ requeues what a worker held once it misses two heartbeats: 10 s instead of
    # Celery's 120 s gets a cut-off host's tasks moving in about 20 s (Redis ignores it).
    broker_heartbeat=10,
    # A host cut off from Redis keeps its BRPOP waiting on a reply lost in the network;
    # kombu drops such a connection after brpop_timeout + health_check_interval, checked
    # every health_check_interval (25 s by default: up to about 51 s of a worker that is
    # up in the table but deaf to its queue). 3 s makes that a few seconds.
    broker_transport_options={
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 3,
    },
    worker_hijack_root_logger=True,
    beat_schedule_filename=os.environ.get("CELERY_BEAT_SCHEDULE", "celerybeat-schedule"),
)
if broker_url.startswith("rediss://") and "ssl_cert_reqs=" not in broker_url:
    # kombu alone would use a bare rediss:// URL without checking the server's
    # certificate; check it against the system's CAs, as redis-py does for the table.
    app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}

try:
    rfqueue.install(app)
except rfqueue.SettingsError as exc:
    # A bad setting is a user mistake: one line naming it, exit code 2, no traceback.
    print(f"rfqueue: error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
