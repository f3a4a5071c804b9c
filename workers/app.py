"""The reference Celery app. Start it with plain Celery commands:

    celery -A workers.app worker --hostname w1@%h
    celery -A workers.app beat
    celery -A workers.app flower

Configuration comes from the environment: ``CELERY_BROKER_URL`` and any
``RFQUEUE_*`` setting (see the README).
"""

from __future__ import annotations

import os
import sys

from celery import Celery

import rfqueue

broker_url = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0")

#: the task modules a worker loads; ``WORKERS_SKIP=workers.media`` leaves modules out, as
#: in a fleet whose workers run different builds (and so register different task sets)
TASK_MODULES = ("workers.tasks", "workers.media")
skipped = {name.strip() for name in os.environ.get("WORKERS_SKIP", "").split(",")}

app = Celery("workers", broker=broker_url, include=[m for m in TASK_MODULES if m not in skipped])
# rfqueue's recommended settings (JSON only, prefetch 1, late acks, publish retries,
# health checks, TLS checks), then the deployment's own.
app.conf.update(rfqueue.recommended_config(broker_url))
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=True,
    beat_schedule_filename=os.environ.get("CELERY_BEAT_SCHEDULE", "celerybeat-schedule"),
    # The video pool: workers started with `-Q video` run these (docker-compose.pools.yml).
    # rfqueue picks one up worker of that pool for each task (see the README, Pools).
    task_routes={"workers.media.transcode": {"queue": "video"}},
)

try:
    rfqueue.install(app)
except rfqueue.SettingsError as exc:
    # A bad setting is a user mistake: one line naming it, exit code 2, no traceback.
    print(f"rfqueue: error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None
