"""``recommended_config``: one source for the Celery settings rfqueue's promises rest on."""

from __future__ import annotations

import gc
import importlib
import ssl
import sys
import warnings
import weakref
from collections.abc import Callable

import pytest
from celery import Celery
from celery.exceptions import DuplicateTaskNameWarning

import rfqueue
import rfqueue.app
from rfqueue.app import CHAOS_TASK
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.registry import snapshot_for
from tests.unit.conftest import NAMESPACE


@pytest.mark.parametrize(
    ("url", "disable_prefetch"),
    [("redis://h:1/0", True), ("rediss://h:1/0?ssl_cert_reqs=required", True),
     ("sentinel://h:26379", True), ("amqp://guest@h//", False)],
)  # fmt: skip
def test_the_recommended_settings(url: str, disable_prefetch: bool) -> None:
    config = rfqueue.recommended_config(url)
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["accept_content"] == config["result_accept_content"] == ["json"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_disable_prefetch"] is disable_prefetch
    assert config["task_publish_retry_policy"]["max_retries"] == 12
    assert config["broker_transport_options"]["health_check_interval"] == 3
    assert config["broker_heartbeat"] == 10
    assert "broker_use_ssl" not in config  # only a bare rediss:// URL needs it


def test_a_bare_rediss_url_checks_the_certificate() -> None:
    config = rfqueue.recommended_config("rediss://h:6380/0")
    assert config["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_each_call_returns_a_fresh_copy() -> None:
    first = rfqueue.recommended_config("redis://h:1/0")
    first["broker_transport_options"]["health_check_interval"] = 99
    assert rfqueue.recommended_config("redis://h:1/0")["broker_transport_options"] == {
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 3,
    }


@pytest.mark.parametrize("module", ["workers.app", "rfqueue.demo.app"])
def test_the_reference_and_demo_apps_use_them(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delitem(sys.modules, module, raising=False)
    app = importlib.import_module(module).app
    for key, value in rfqueue.recommended_config("redis://127.0.0.1:1/0").items():
        assert app.conf[key] == value, key


def test_each_app_gets_its_own_chaos_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several apps in one process (tests, tenants): each tick acts on its own app."""
    ticked: list[Celery] = []
    monkeypatch.setattr(rfqueue.app, "run_tick", lambda app, overrides: ticked.append(app) or {})
    apps = [Celery(f"tenant{n}", broker="memory://", set_as_current=False) for n in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateTaskNameWarning)
        for n, app in enumerate(apps):
            rfqueue.install(app, namespace=f"tenant{n}")
        for app in apps:
            app.finalize()
    for app in apps:
        app.tasks[CHAOS_TASK].run()
    assert ticked == apps
    assert CHAOS_TASK not in Celery("bystander", set_as_current=False).tasks


def work() -> None:
    """A task to send."""


@pytest.mark.usefixtures("use_fake_redis")
def test_an_installed_app_that_routed_can_be_collected(
    table: FailureTable, stop: Callable[..., None], poll: Callable[..., bool]
) -> None:
    # Given an installed app whose router started (snapshot, hook) and whose task was sent
    table.register("w1@h", "rfqueue.w1@h")
    app = Celery("gone", broker="memory://", set_as_current=False)
    rfqueue.install(app, redis_url="redis://fake-table:6379/0", namespace=NAMESPACE)
    app.task(name="app.work", shared=False)(work)
    app.tasks["app.work"].apply_async()
    snapshot = snapshot_for(Settings.load(app.conf))
    try:
        # When the last reference of the caller's goes
        ref = weakref.ref(app)
        del app
        # Then the app is gone (the refresh thread may be inside the router's hook for a
        # moment, holding it), and the process-wide snapshot dropped the router's hook
        assert poll(lambda: gc.collect() >= 0 and ref() is None, 5)
        snapshot._run_hooks()
        assert snapshot._hooks == []
    finally:
        stop(snapshot)
