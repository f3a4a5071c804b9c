"""The public router: ``task_routes = ["rfqueue.router.route"]`` (see :mod:`rfqueue.routing`).

``route`` reads the settings of the app that sends each task; ``Router(app)`` is the
instance ``rfqueue.install`` adds. The code lives in :mod:`rfqueue.routing.router`.
"""

from rfqueue.routing.router import NoWorkerUp, Router, route

__all__ = ["NoWorkerUp", "Router", "route"]
