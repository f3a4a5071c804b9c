"""rfqueue: a failure-aware task dispatcher for Celery.

A router sends each task to the queue of one worker that is up; a beat-scheduled job
pauses workers at random inside a blast-radius budget; a table in Redis says who is up.
"""

from rfqueue.app import install
from rfqueue.dispatch import dispatch_many
from rfqueue.entry import Entry, Reason, State
from rfqueue.router import NoWorkerUp, Router
from rfqueue.settings import Settings, SettingsError
from rfqueue.table import Budget, FailureTable

__all__ = [
    "Budget",
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
]
__version__ = "0.1.0"
