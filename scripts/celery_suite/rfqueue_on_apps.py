"""pytest plugin: rfqueue installed on every app Celery's own test fixtures make.

Loaded with ``-p rfqueue_on_apps`` by ``scripts/celery_suite/run.py``. Celery's
``celery_app`` and ``celery_session_app`` fixtures build their apps with
``celery.contrib.testing.app.TestApp`` (imported when the fixture runs); each app it
returns gets ``rfqueue.install``, with the suite's own configuration left as it is.
"""

from __future__ import annotations

from typing import Any

import celery.contrib.testing.app as testing_app
import pytest

import rfqueue

#: the suite's apps share one namespace: its session worker serves every test's app
NAMESPACE = "celery-suite"


def pytest_configure(config: pytest.Config) -> None:
    make = testing_app.TestApp

    def with_rfqueue(*args: Any, **kwargs: Any) -> Any:
        app = make(*args, **kwargs)
        rfqueue.install(app, namespace=NAMESPACE)
        return app

    testing_app.TestApp = with_rfqueue
