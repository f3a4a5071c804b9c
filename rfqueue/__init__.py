"""rfqueue: a failure-aware task dispatcher for Celery.

A router sends each task to the queue of one worker that is up; a beat-scheduled job
pauses workers at random inside a blast-radius budget; a table in Redis says who is up.

The house, from the bottom up (each layer imports only the layers below it):

- foundation: :mod:`~rfqueue.settings` and :mod:`~rfqueue.validation`,
  :mod:`~rfqueue.keys`, :mod:`~rfqueue.connection`, :mod:`~rfqueue.log`,
  :mod:`~rfqueue.console`;
- :mod:`rfqueue.table` (the failure table and each process's snapshot of it) and
  :mod:`rfqueue.brokers` (what rfqueue does inside the Celery broker);
- :mod:`rfqueue.routing` (the router, its policies, batch dispatch);
- :mod:`rfqueue.worker` (inside a Celery worker), :mod:`~rfqueue.control` and
  :mod:`~rfqueue.chaos`;
- :mod:`~rfqueue.app` (``install``), :mod:`rfqueue.monitoring`;
- applications: :mod:`rfqueue.demo`, :mod:`rfqueue.bench`, :mod:`rfqueue.simulate`;
- :mod:`rfqueue.cli`, the ``rfqueue`` command.

:mod:`rfqueue.router` and :mod:`rfqueue.inbound` are public names kept for Celery
configurations (``task_routes = ["rfqueue.router.route"]``).
"""

from rfqueue.app import install, recommended_config
from rfqueue.routing.dispatch import DispatchError, dispatch_many
from rfqueue.routing.router import NoWorkerUp, Router
from rfqueue.settings import Settings, SettingsError
from rfqueue.table import Budget, Entry, FailureTable, Reason, State

__all__ = [
    "Budget",
    "DispatchError",
    "Entry",
    "FailureTable",
    "NoWorkerUp",
    "Reason",
    "Router",
    "Settings",
    "SettingsError",
    "State",
    "dispatch_many",
    "install",
    "recommended_config",
]
__version__ = "0.1.0"
