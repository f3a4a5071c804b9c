"""The ``rfqueue`` command: normal output through CliRunner, user errors through ``main``.

Every user mistake must end with exit code 2, exactly one line on stderr naming the
argument or setting, and nothing written to the table.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner, Result

import rfqueue.cli
from rfqueue.cli import cli, main
from rfqueue.control import RemoteControl
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason, State
from tests.unit.conftest import server_time

W1, W2, W3 = "w1@h", "w2@h", "w3@h"

pytestmark = pytest.mark.usefixtures("use_fake_redis", "no_broker")


def q(worker: str) -> str:
    return f"rfqueue.{worker}"


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> list[RemoteControl]:
    """The CLI's remote control never reaches a broker."""
    made: list[RemoteControl] = []

    def control(self: Any) -> RemoteControl:
        made.append(RemoteControl(None))
        return made[-1]

    monkeypatch.setattr(rfqueue.cli.Context, "control", control)
    return made


@pytest.fixture
def fleet(client: Any) -> FailureTable:
    """Three up workers in the default namespace, which the CLI uses."""
    table = FailureTable(client, "rfqueue")
    for worker in (W1, W2, W3):
        table.register(worker, q(worker))
    return table


def run(*args: str) -> Result:
    # Wide enough that rich never wraps a cell
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)


class TestStatus:
    def test_table(self, fleet: FailureTable) -> None:
        fleet.pause(W2, 600, Reason.MANUAL, note="disk")
        fleet.mark_down(W3, Reason.SHUTDOWN)
        result = run("status")
        assert result.exit_code == 0
        lines = result.output.splitlines()
        assert "rfqueue table 'rfqueue' at redis://localhost:6379/0" in result.output
        row = {w: next(ln for ln in lines if w in ln and q(w) in ln) for w in (W1, W2, W3)}
        assert " up " in row[W1]
        assert " paused " in row[W2] and "manual" in row[W2]
        assert " down " in row[W3] and "shutdown" in row[W3]
        # and the events, newest last among the shown ones
        assert any("pause" in line and "(disk)" in line for line in lines)

    def test_expired_pause_is_marked(self, fleet: FailureTable) -> None:
        with server_time(time.time() - 100):
            FailureTable(fleet.client, "rfqueue").pause(W1, 10, Reason.MANUAL)
        assert "paused (expired)" in run("status").output

    def test_pools_in_the_table_and_the_json(self, fleet: FailureTable) -> None:
        from rfqueue.table.service import Service

        # Given a worker of two pools, and workers from before pools
        fleet.register(W1, q(W1), Service.of(["video", "audio"], ["app.t"]))
        # Then the table names its pools, and a dash for the others
        lines = run("status").output.splitlines()
        assert "audio,video" in next(ln for ln in lines if W1 in ln)
        assert " - " in next(ln for ln in lines if W2 in ln)
        # And the JSON lists them, with the digest of its task set
        doc = json.loads(run("status", "--json").output)
        rows = {w["worker"]: w for w in doc["workers"]}
        assert rows[W1]["pools"] == ["audio", "video"] and len(rows[W1]["tasks"]) == 16
        assert (rows[W2]["pools"], rows[W2]["tasks"]) == ([], None)

    def test_json(self, fleet: FailureTable) -> None:
        # Given one paused worker
        fleet.pause(W2, 600, Reason.CHAOS, note="drill")
        # When status is asked for as JSON
        result = run("status", "--json")
        # Then it is one document of workers (by name) and events, times as epoch floats
        assert result.exit_code == 0
        doc = json.loads(result.output)
        assert set(doc) == {"workers", "events"}
        assert [w["worker"] for w in doc["workers"]] == [W1, W2, W3]
        w2 = doc["workers"][1]
        assert set(w2) >= {"worker", "queue", "state", "reason", "since", "until", "heartbeat"}
        assert (w2["queue"], w2["state"], w2["reason"], w2["note"]) == (
            q(W2),
            "paused",
            "chaos",
            "drill",
        )
        now = time.time()
        for key in ("since", "until", "heartbeat"):
            assert isinstance(w2[key], float)
        assert now < w2["until"] <= now + 601
        assert doc["workers"][0]["until"] is None
        assert len(doc["events"]) == 4
        newest = doc["events"][0]
        assert set(newest) >= {"time", "worker", "action", "reason", "state", "until", "version"}
        assert (newest["worker"], newest["action"], newest["note"]) == (W2, "pause", "drill")
        assert all(isinstance(ev["time"], float) for ev in doc["events"])

    def test_events_option(self, fleet: FailureTable) -> None:
        assert json.loads(run("status", "--json", "--events", "0").output)["events"] == []
        assert len(json.loads(run("status", "--json", "--events", "2").output)["events"]) == 2

    def test_empty_table(self) -> None:
        result = run("status", "--json")
        assert json.loads(result.output) == {"workers": [], "events": []}

    def test_password_never_shown(self, fleet: FailureTable) -> None:
        url = "redis://:s3cret@127.0.0.1:1/0"
        result = run("--redis-url", url, "status")
        assert result.exit_code == 0
        assert "s3cret" not in result.output
        assert ":**@127.0.0.1:1/0" in result.output
        assert "s3cret" not in run("--redis-url", url, "status", "--json").output

    def test_password_never_shown_by_main(
        self, fleet: FailureTable, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["--redis-url", "redis://:s3cret@127.0.0.1:1/0", "status"]) == 0
        captured = capsys.readouterr()
        assert "s3cret" not in captured.out + captured.err
        assert W1 in captured.out

    def test_malformed_entries_are_skipped(self, fleet: FailureTable) -> None:
        for name, raw in {"bad1@h": "{oops", "bad2@h": "[1]", "bad3@h": '{"worker": 1}'}.items():
            fleet.client.hset(fleet.keys.workers, name, raw)
        fleet.client.lpush(fleet.keys.events, "not an event")
        result = run("status")
        assert result.exit_code == 0
        assert "bad1@h" not in result.stdout and W1 in result.stdout
        doc = json.loads(run("status", "--json").stdout)
        assert [w["worker"] for w in doc["workers"]] == [W1, W2, W3]


class TestChanges:
    def test_pause(self, fleet: FailureTable) -> None:
        # When an operator pauses W1 for 90 s with a reason
        started = time.time()
        result = run("pause", W1, "--for", "90", "--reason", "kernel update")
        # Then it says so, and the table holds a manual pause with the note
        assert result.exit_code == 0
        assert result.output.startswith(f"paused {W1} until ")
        assert "(90 s)" in result.output
        e = fleet.entries()[W1]
        assert (e.state, e.reason, e.note) == (State.PAUSED, Reason.MANUAL, "kernel update")
        assert started + 90 <= e.until <= time.time() + 90  # type: ignore[operator]
        assert fleet.events(1)[0].note == "kernel update"

    def test_pause_tells_the_worker(self, fleet: FailureTable, no_broker: list[Any]) -> None:
        run("pause", W1, "--for", "5")
        assert len(no_broker) == 1

    def test_pause_up_to_max_pause(self, fleet: FailureTable) -> None:
        assert run("pause", W1, "--for", "3600").exit_code == 0

    def test_resume(self, fleet: FailureTable) -> None:
        fleet.pause(W1, 60, Reason.CHAOS)
        result = run("resume", W1)
        assert (result.exit_code, result.output) == (0, f"resumed {W1}\n")
        assert fleet.entries()[W1].state is State.UP

    def test_resume_of_an_up_worker(self, fleet: FailureTable) -> None:
        version = fleet.version()
        result = run("resume", W1)
        assert (result.exit_code, result.output) == (0, f"{W1} was not paused (state: up)\n")
        assert fleet.version() == version

    def test_forget(self, fleet: FailureTable) -> None:
        fleet.mark_down(W3, Reason.SHUTDOWN)
        result = run("forget", W3)
        assert (result.exit_code, result.output) == (0, f"forgot {W3}\n")
        assert sorted(fleet.entries()) == [W1, W2]

    def test_forget_a_paused_worker_only_with_force(self, fleet: FailureTable) -> None:
        fleet.pause(W3, 60, Reason.MANUAL)
        refused = run("forget", W3)
        assert refused.exit_code == 2
        assert f"{W3} is paused; stop or drain it first, or use --force" in refused.output
        assert W3 in fleet.entries()
        forced = run("forget", "--force", W3)
        assert (forced.exit_code, forced.output) == (0, f"forgot {W3}\n")
        assert W3 not in fleet.entries()
        assert fleet.events(1)[0].reason == "force"

    def test_forget_a_malformed_entry(self, fleet: FailureTable) -> None:
        fleet.client.hset(fleet.keys.workers, "junk@h", "{oops")
        assert run("forget", "junk@h").exit_code == 0
        assert fleet.client.hget(fleet.keys.workers, "junk@h") is None

    def test_chaos_dry_run(self, fleet: FailureTable) -> None:
        workers = fleet.client.hgetall(fleet.keys.workers)
        result = run("chaos", "--dry-run", "--probability", "1", "--seed", "3")
        assert result.exit_code == 0
        assert result.output.startswith("would pause ")
        assert result.output.endswith("s (dry run)\n")
        assert fleet.client.hgetall(fleet.keys.workers) == workers
        assert fleet.events(1)[0].action == "dry_run_pause"

    def test_chaos(self, fleet: FailureTable) -> None:
        result = run("chaos", "--probability", "1", "--seed", "3")
        assert result.exit_code == 0
        assert result.output.startswith("paused ")
        assert sum(e.state is State.PAUSED for e in fleet.entries().values()) == 1

    def test_chaos_that_does_nothing(self, fleet: FailureTable) -> None:
        result = run("chaos", "--probability", "0")
        assert (result.exit_code, result.output) == (0, "nothing to do\n")

    def test_namespace_option(self, client: Any) -> None:
        FailureTable(client, "other").register("x@h", "qx")
        doc = json.loads(run("--namespace", "other", "status", "--json").output)
        assert [w["worker"] for w in doc["workers"]] == ["x@h"]


BAD_INPUT: list[tuple[list[str], dict[str, str], str]] = [
    (["pause", "nobody@h", "--for", "10"], {}, "'WORKER'"),
    (["pause", W1, "--for", "0"], {}, "'--for'"),
    (["pause", W1, "--for", "-5"], {}, "'--for'"),
    (["pause", W1, "--for", "3600.5"], {}, "'--for'"),
    (["pause", W1, "--for", "61"], {"RFQUEUE_MAX_PAUSE": "60"}, "rfqueue_max_pause"),
    (["pause", W1, "--for", "soon"], {}, "'--for'"),
    (["pause", W1], {}, "'--for'"),
    (["resume", "nobody@h"], {}, "'WORKER'"),
    (["forget", "nobody@h"], {}, "'WORKER'"),
    (["forget", W1], {}, "'WORKER'"),
    (["forget", "--force"], {}, "'WORKER'"),
    (["--redis-url", "not-a-url", "status"], {}, "'--redis-url'"),
    (["--redis-url", "redis://:s3cret@h:port/0", "pause", W1, "--for", "5"], {}, "'--redis-url'"),
    (["status"], {"RFQUEUE_POLICY": "bogus"}, "rfqueue_policy"),
    (["pause", W1, "--for", "5"], {"RFQUEUE_MAX_PAUSED": "lots"}, "RFQUEUE_MAX_PAUSED"),
    (["chaos"], {"RFQUEUE_MAX_PAUSED": "10"}, "rfqueue_max_paused"),
    (["chaos", "--probability", "2"], {}, "'--probability'"),
    (["chaos"], {"RFQUEUE_POOL_MAX_PAUSED": "audio=1"}, "rfqueue_pool_max_paused"),
    (["chaos"], {"RFQUEUE_POOL_MIN_UP": "celery=1,audio=1"}, "rfqueue_pool_min_up"),
    (["chaos"], {"RFQUEUE_POOL_MAX_PAUSED": "celery"}, "rfqueue_pool_max_paused"),
    (["chaos"], {"RFQUEUE_POOL_MAX_PAUSED": "celery=1.5"}, "rfqueue_pool_max_paused"),
    (["status"], {"RFQUEUE_POOL_MIN_UP": "celery=-1"}, "rfqueue_pool_min_up"),
    (["status"], {"RFQUEUE_POOL_MIN_UP": "celery=two"}, "rfqueue_pool_min_up"),
    (["status", "--events", "-1"], {}, "'--events'"),
    (["nosuchcommand"], {}, "nosuchcommand"),
]


@pytest.mark.parametrize(
    ("argv", "env", "named"), BAD_INPUT, ids=[" ".join(a) + str(e) for a, e, _ in BAD_INPUT]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv: list[str],
    env: dict[str, str],
    named: str,
    fleet: FailureTable,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dump: Callable[[Any], dict[str, Any]],
) -> None:
    # Given a table of three workers
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = dump(fleet.client)
    # When the command is given bad input
    code = main(argv)
    # Then it exits 2 with one line naming what was wrong, and the table is untouched
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("rfqueue: error: ")
    assert named in lines[0]
    assert "s3cret" not in captured.err
    assert captured.out == ""
    assert dump(fleet.client) == before


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "pause" in capsys.readouterr().out


def test_main_success_returns_0(fleet: FailureTable, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["resume", W1]) == 0
    assert capsys.readouterr().out == f"{W1} was not paused (state: up)\n"


def test_pause_for_nan_is_rejected(
    fleet: FailureTable, capsys: pytest.CaptureFixture[str], dump: Callable[[Any], dict[str, Any]]
) -> None:
    before = dump(fleet.client)
    code = main(["pause", W1, "--for", "nan"])
    assert code == 2
    assert "'--for'" in capsys.readouterr().err
    assert dump(fleet.client) == before


def test_status_shows_notes_with_brackets(fleet: FailureTable) -> None:
    fleet.pause(W1, 60, Reason.MANUAL, note="see [/] ticket [bold]42")
    result = run("status")
    assert result.exit_code == 0
    assert "see [/] ticket [bold]42" in result.output


def test_status_shows_an_ejection_with_why(fleet: FailureTable) -> None:
    note = "5 failures in a row; its pool's others 0 of 20"
    fleet.pause(W1, 30, Reason.OUTLIER, note=note)
    lines = run("status").output.splitlines()
    (row,) = [line for line in lines if line.startswith("│ w1@h")]
    assert "paused" in row and "outlier" in row and "in 30.0s" in row
    assert any(" pause " in line and f"outlier ({note})" in line for line in lines)
