"""The reference deployment (``workers/``) as the tests run it: the README's own commands."""

from __future__ import annotations

from workers.producer import PRODUCER_COMMAND

#: the reference deployment's Celery app
APP = "workers.app"
#: the README's commands; docker-compose.yml runs exactly these
WORKER_COMMAND = ("celery", "-A", APP, "worker", "--hostname")
BEAT_COMMAND = ("celery", "-A", APP, "beat")
#: Flower with rfqueue's Fleet page: the same options as `celery flower`
FLOWER_COMMAND = ("rfqueue", "flower", "-A", APP)

__all__ = ["APP", "BEAT_COMMAND", "FLOWER_COMMAND", "PRODUCER_COMMAND", "WORKER_COMMAND"]
