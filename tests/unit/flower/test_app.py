"""rfqueue's pages inside a real Flower application (in this process, the table in fakeredis).

Flower's own application class serves on a loopback port from a thread; requests go
through Flower's authentication exactly as in ``rfqueue flower``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from celery import Celery
from flower.options import options as flower_options
from flower.urls import settings as flower_settings
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from rfqueue.demo.fleet import free_port
from rfqueue.flower.app import FleetFlower
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason, State

W1, W2 = "w1@h", "w2@h"
GOOD, BAD = "admin:pw", "admin:wrong"

pytestmark = pytest.mark.usefixtures("use_fake_redis")


@pytest.fixture
def fleet(client: Any) -> FailureTable:
    table = FailureTable(client, "rfqueue")
    for worker in (W1, W2):
        table.register(worker, f"rfqueue.{worker}")
    table.pause(W2, 60, Reason.CHAOS)
    return table


class Served:
    """One Flower application on a loopback port, its IOLoop in a thread of its own."""

    def __init__(self, **options: Any) -> None:
        self.port = free_port()
        self.options = SimpleNamespace(**{**flower_options.as_dict(), **options})
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the application did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        self.loop = IOLoop.current()
        capp = Celery("t", broker="memory://")  # a broker rfqueue does not look into
        self.app = FleetFlower(
            capp=capp,
            options=self.options,
            io_loop=self.loop,
            rfqueue_settings=Settings(),
            **{**flower_settings, "cookie_secret": "test"},
        )
        HTTPServer(self.app).listen(self.port, "127.0.0.1")
        self._ready.set()
        self.loop.start()

    def stop(self) -> None:
        self.loop.add_callback(self.loop.stop)
        self._thread.join(10)
        self.app.executor.shutdown(wait=False)

    def request(
        self,
        path: str,
        credentials: str | None = GOOD,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        if credentials:
            token = base64.b64encode(credentials.encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(**options: Any) -> Served:
        started.append(Served(**options))
        return started[-1]

    yield start
    for served in started:
        served.stop()


@pytest.fixture
def flower(serve: Callable[..., Served], fleet: FailureTable) -> Served:
    return serve(basic_auth=[GOOD], url_prefix="ops")


def test_the_fleet_document_behind_flower_s_basic_auth(flower: Served) -> None:
    status, body = flower.request("/ops/rfqueue/api/fleet")
    assert status == 200
    workers = {w["worker"]: w for w in json.loads(body)["workers"]}
    assert (workers[W1]["shown"], workers[W2]["shown"], workers[W2]["reason"]) == (
        "up",
        "paused",
        "chaos",
    )
    for credentials in (None, BAD):
        for path in ("/ops/rfqueue", "/ops/rfqueue/api/fleet"):
            assert flower.request(path, credentials)[0] == 401


def test_routes_live_under_flower_s_url_prefix(flower: Served) -> None:
    assert flower.request("/rfqueue/api/fleet")[0] == 404
    status, page = flower.request("/ops/rfqueue")
    assert status == 200
    assert 'data-api="/ops/rfqueue/api/fleet"' in page
    assert 'data-worker-url="/ops/worker/__WORKER__"' in page
    assert "/ops/rfqueue/static/fleet.js" in page


def test_flower_s_own_pages_link_rfqueue_s_script(flower: Served) -> None:
    status, page = flower.request("/ops/workers")
    assert status == 200
    assert '<script src="/ops/rfqueue/static/flower-extras.js"' in page
    assert flower.request("/ops/rfqueue/static/flower-extras.js", None)[0] == 200


def test_pause_and_resume_do_what_the_cli_does(flower: Served, fleet: FailureTable) -> None:
    status, body = flower.request(
        f"/ops/rfqueue/api/worker/pause/{W1}", form={"seconds": "90", "reason": "disk & co"}
    )
    assert status == 200, body
    assert json.loads(body)["message"].startswith(f"paused {W1} until ")
    entry = fleet.entries()[W1]
    assert (entry.state, entry.reason, entry.note) == (State.PAUSED, Reason.MANUAL, "disk & co")
    status, body = flower.request(f"/ops/rfqueue/api/worker/resume/{W2}", form={})
    assert (status, json.loads(body)["message"]) == (200, f"resumed {W2}")
    assert fleet.entries()[W2].state is State.UP


def test_drain_and_resume_do_what_the_cli_does(flower: Served, fleet: FailureTable) -> None:
    status, body = flower.request(f"/ops/rfqueue/api/worker/drain/{W1}", form={"reason": "deploy"})
    assert status == 200, body
    assert json.loads(body)["message"].startswith(f"draining {W1} (at the latest until ")
    entry = fleet.entries()[W1]
    assert (entry.state, entry.reason, entry.note) == (State.DRAINING, Reason.MANUAL, "deploy")
    status, body = flower.request(f"/ops/rfqueue/api/worker/resume/{W1}", form={})
    assert (status, json.loads(body)["message"]) == (200, f"resumed {W1}")
    assert fleet.entries()[W1].state is State.UP


@pytest.mark.parametrize(
    ("path", "form", "credentials", "headers", "status", "words"),
    [
        (
            f"pause/{W1}",
            {"seconds": "7200"},
            GOOD,
            {},
            400,
            "7200 s is longer than rfqueue_max_pause (3600 s)",
        ),
        (f"pause/{W1}", {"seconds": "soon"}, GOOD, {}, 400, "'soon' is not a number of seconds"),
        (f"pause/{W1}", {"seconds": "0"}, GOOD, {}, 400, "0 is not a positive number of seconds"),
        (f"pause/{W1}", {}, GOOD, {}, 400, "'' is not a number of seconds"),
        ("pause/nobody@h", {"seconds": "9"}, GOOD, {}, 404, "no worker named 'nobody@h'"),
        ("resume/nobody@h", {}, GOOD, {}, 404, "no worker named 'nobody@h'"),
        ("drain/nobody@h", {}, GOOD, {}, 404, "no worker named 'nobody@h'"),
        (f"drain/{W1}", {"seconds": "soon"}, GOOD, {}, 400, "'soon' is not a number of seconds"),
        (f"explode/{W1}", {}, GOOD, {}, 404, "Unknown action 'explode'"),
        (f"resume/{W2}", {}, BAD, {}, 401, ""),
        (f"resume/{W2}", {}, None, {}, 401, ""),
        (f"resume/{W2}", {}, GOOD, {"Sec-Fetch-Site": "cross-site"}, 403, "Cross-site"),
        (f"resume/{W2}", {}, GOOD, {"Origin": "http://evil.example"}, 403, "Cross-origin"),
    ],
)
def test_a_refused_action_is_one_line_and_changes_nothing(
    flower: Served,
    fleet: FailureTable,
    dump: Callable[[Any], dict[str, Any]],
    path: str,
    form: dict[str, str],
    credentials: str | None,
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    before = dump(fleet.client)
    got, body = flower.request(f"/ops/rfqueue/api/worker/{path}", credentials, form, headers)
    assert got == status
    assert words in body and "\n" not in body.strip() and "Traceback" not in body
    assert dump(fleet.client) == before


def test_read_only_flower_refuses_actions(
    serve: Callable[..., Served], fleet: FailureTable
) -> None:
    flower = serve(basic_auth=[GOOD], read_only=True)
    assert flower.request(f"/rfqueue/api/worker/resume/{W2}", form={})[0] == 403
    assert fleet.entries()[W2].state is State.PAUSED


def test_without_authentication_actions_are_closed_like_flower_s_api(
    serve: Callable[..., Served], fleet: FailureTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWER_UNAUTHENTICATED_API", raising=False)
    flower = serve(basic_auth=None)
    assert flower.request("/rfqueue", None)[0] == 200  # pages are open, as Flower's are
    assert flower.request(f"/api/worker/queue/add-consumer/{W2}?queue=q", None, {})[0] == 401
    assert flower.request(f"/rfqueue/api/worker/resume/{W2}", None, {})[0] == 401
    assert fleet.entries()[W2].state is State.PAUSED


def test_an_unreachable_table_is_503_and_one_line(
    flower: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> dict[str, Any]:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    monkeypatch.setattr(flower.app.rfqueue, "document", unreachable)
    status, body = flower.request("/ops/rfqueue/api/fleet")
    assert status == 503
    assert json.loads(body) == {
        "error": "cannot reach the failure table's Redis: "
        "Error 111 connecting to 127.0.0.1:6390. Connection refused."
    }
