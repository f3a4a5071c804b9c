"""Flower's own Tornado application with rfqueue's pages added to it.

:class:`FleetFlower` is Flower's application class, constructed exactly as Flower's
command constructs it; after Flower's ``__init__`` it adds rfqueue's routes with
Tornado's ``add_handlers`` (a host rule put before Flower's, so Flower's catch-all
404 does not hide them) under Flower's ``url_prefix``.

Flower's pages are not copied: every one of them renders its navigation bar through
Tornado's ``Template`` UI module (``{% module Template("navbar.html") %}``), and
Tornado links the JavaScript files a rendered UI module names at the end of the page.
:class:`TemplateWithFleetScript` is that module, naming one more file: rfqueue's
script, which adds a Fleet link to the navigation bar, a state badge to each paused
worker in Flower's worker list, and rfqueue's state to a worker's page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flower.app import Flower
from tornado.web import TemplateModule

from rfqueue.flower.backend import FleetBackend
from rfqueue.flower.handlers import fleet_handlers
from rfqueue.settings import Settings

logger = logging.getLogger(__name__)

#: rfqueue's script on Flower's pages, served from rfqueue's static route
EXTRAS_SCRIPT = "flower-extras.js"


class TemplateWithFleetScript(TemplateModule):
    """Tornado's ``Template`` module, also linking rfqueue's script into the page it is on."""

    def javascript_files(self) -> Iterable[str]:
        files = list(super().javascript_files() or ())
        return [*files, self.handler.reverse_url("rfqueue-static", EXTRAS_SCRIPT)]


class FleetFlower(Flower):  # type: ignore[misc]
    """Flower, plus ``<url_prefix>/rfqueue``: the Fleet page, its JSON and its actions."""

    def __init__(self, *args: Any, rfqueue_settings: Settings | None = None, **kwargs: Any):
        ui_modules = dict(kwargs.pop("ui_modules", None) or {})
        ui_modules["Template"] = TemplateWithFleetScript
        super().__init__(*args, ui_modules=ui_modules, **kwargs)
        settings = rfqueue_settings or Settings.load(self.capp.conf)
        self.rfqueue = FleetBackend(settings, self.capp)
        prefix = self.options.url_prefix or ""
        self.add_handlers(r".*", fleet_handlers(prefix, self.rfqueue))
        logger.info(
            "rfqueue: Fleet page at %s/rfqueue (table %r on %s)",
            f"/{prefix.strip('/')}" if prefix.strip("/") else "",
            settings.namespace,
            settings.safe_redis_url,
        )
