"""rfqueue's pages and API inside Flower's Tornado application, behind Flower's own checks.

Each handler subclasses one of Flower's, so authentication (``--basic-auth``, ``--auth``),
the 401 answer and the XSRF rules are Flower's, in whichever supported version runs:

- the Fleet page and its JSON document are read-only views, like Flower's worker list
  (``BaseHandler`` with ``tornado.web.authenticated``);
- the pause and resume actions are API handlers, like Flower's own worker actions
  (``BaseApiHandler``: refused with 401 unless authentication is on or
  ``FLOWER_UNAUTHENTICATED_API`` is set; ``--read_only`` refuses them with 403; Flower's
  XSRF check where the version has one). On top of that, a cross-site POST is refused
  in every version, as Flower 2.2 does.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis
from flower.api import BaseApiHandler
from flower.views import BaseHandler
from tornado import web
from tornado.ioloop import IOLoop
from tornado.routing import URLSpec

from rfqueue.control import Refused
from rfqueue.flower.backend import FleetBackend
from rfqueue.table.replication import ReplicationError

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
#: an absolute path: Flower's template loader reads it, and its ``extends "base.html"``
#: then resolves against Flower's own templates
FLEET_TEMPLATE = str(HERE / "templates" / "fleet.html")
STATIC_PATH = str(HERE / "static")


def unreachable(exc: Exception) -> dict[str, str]:
    """A Redis failure as the one line the page shows."""
    if isinstance(exc, ReplicationError):  # the change was made, it is only not safe yet
        return {"error": str(exc)}
    return {"error": f"cannot reach the failure table's Redis: {exc}"}


class FleetPage(BaseHandler):  # type: ignore[misc]
    """``GET <prefix>/rfqueue``: the Fleet page; it draws itself from the JSON document."""

    def initialize(self, backend: FleetBackend) -> None:
        self.backend = backend

    @web.authenticated
    def get(self) -> None:
        self.render(
            FLEET_TEMPLATE,
            namespace=self.backend.settings.namespace,
            max_pause=f"{self.backend.settings.max_pause:g}",
            api_url=self.reverse_url("rfqueue-fleet-api"),
            action_url=self.reverse_url("rfqueue-action", "__ACTION__", "__WORKER__"),
            worker_url=self.reverse_url("worker", "__WORKER__"),
            tasks_url=self.reverse_url("tasks"),
        )


class FleetApi(BaseHandler):  # type: ignore[misc]
    """``GET <prefix>/rfqueue/api/fleet``: the document the page polls (read-only)."""

    def initialize(self, backend: FleetBackend) -> None:
        self.backend = backend

    @web.authenticated
    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        try:
            document = await IOLoop.current().run_in_executor(None, self.backend.document)
        except (redis.RedisError, OSError) as exc:
            self.set_status(503)
            self.write(unreachable(exc))
            return
        self.write(document)


class WorkerAction(BaseApiHandler):  # type: ignore[misc]
    """``POST <prefix>/rfqueue/api/worker/<action>/<worker>``: pause or resume, as the CLI does.

    Form fields: ``seconds`` and ``reason`` for a pause. Answers ``{"message": ...}``, or
    ``{"error": one line, "argument": ...}`` with 400 (404 for an unknown worker) and
    nothing changed.
    """

    def initialize(self, backend: FleetBackend) -> None:
        self.backend = backend

    @web.authenticated
    async def post(self, action: str, worker: str) -> None:
        self.set_header("Cache-Control", "no-store")
        self._refuse_unless_allowed()
        act = self.backend.actions.get(action)
        if act is None:
            raise web.HTTPError(404, f"Unknown action '{action}'")
        form = {
            name: self.decode_argument(values[-1], name).strip()
            for name, values in self.request.arguments.items()
        }
        try:
            outcome = await IOLoop.current().run_in_executor(None, act, worker, form)
        except Refused as exc:
            self.set_status(404 if exc.argument == "worker" else 400)
            self.write({"error": exc.message, "argument": exc.argument})
            return
        except (ReplicationError, redis.RedisError, OSError) as exc:
            self.set_status(503)
            self.write(unreachable(exc))
            return
        logger.info("rfqueue: %s (from Flower)", outcome.message)
        entry = outcome.entry.as_dict()
        self.write({"message": outcome.message, "changed": outcome.changed, "entry": entry})

    def _refuse_unless_allowed(self) -> None:
        if getattr(self.application.options, "read_only", False):  # Flower 2.2's --read_only
            raise web.HTTPError(403, "Read only mode is enabled")
        why = cross_site(self.request.headers, self.request.host)
        if why:
            raise web.HTTPError(403, why)


def cross_site(headers: Any, host: str) -> str | None:
    """Why a state-changing request comes from another site, or None (Flower 2.2's rule)."""
    site = headers.get("Sec-Fetch-Site")
    origin = headers.get("Origin")
    if site and site != "same-origin":
        return "Cross-site request forbidden"
    if not site and origin and urlparse(origin).netloc != host:
        return "Cross-origin request forbidden"
    return None


def fleet_handlers(url_prefix: str, backend: FleetBackend) -> list[URLSpec]:
    """rfqueue's routes, under Flower's ``--url_prefix`` as Flower puts its own."""
    base = f"/{url_prefix.strip('/')}" if url_prefix and url_prefix.strip("/") else ""
    kwargs = {"backend": backend}
    return [
        web.url(rf"{base}/rfqueue", FleetPage, kwargs, name="rfqueue-fleet"),
        web.url(rf"{base}/rfqueue/", web.RedirectHandler, {"url": f"{base}/rfqueue"}),
        web.url(rf"{base}/rfqueue/api/fleet", FleetApi, kwargs, name="rfqueue-fleet-api"),
        web.url(
            rf"{base}/rfqueue/api/worker/([a-z]+)/(.+)", WorkerAction, kwargs, name="rfqueue-action"
        ),
        web.url(
            rf"{base}/rfqueue/static/(.*)",
            web.StaticFileHandler,
            {"path": STATIC_PATH},
            name="rfqueue-static",
        ),
    ]
