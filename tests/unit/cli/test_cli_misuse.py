"""CLI misuse that tests/unit/cli/test_cli.py does not cover: one line, right exit code, no change.

A user mistake exits 2 with one line on stderr naming the argument or setting; an
unreachable Redis exits 1 with one line; neither prints a traceback or writes anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import rfqueue.cli
import rfqueue.table
import rfqueue.table.failure_table
from rfqueue.cli import main
from rfqueue.control import RemoteControl
from rfqueue.demo.fleet import free_port
from rfqueue.table import FailureTable

W1 = "w1@h"


@pytest.fixture
def fleet(client: Any, use_fake_redis: None, monkeypatch: pytest.MonkeyPatch) -> FailureTable:
    """One up worker in the default namespace; remote control reaches no broker."""
    monkeypatch.setattr(rfqueue.cli.Context, "control", lambda self: RemoteControl(None))
    table = FailureTable(client, "rfqueue")
    table.register(W1, f"rfqueue.{W1}")
    return table


MISUSE: list[tuple[list[str], str]] = [
    (["pause"], "'WORKER'"),
    (["pause", W1], "'--for'"),
    (["pause", W1, "--for", "inf"], "'--for'"),
    (["pause", W1, "--for", "5", "--reason"], "'--reason'"),
    (["pause", "", "--for", "5"], "'WORKER'"),
    (["pause", "two\nlines@h", "--for", "5"], "'WORKER'"),
    (["resume"], "'WORKER'"),
    (["resume", W1, "extra"], "extra"),
    (["forget"], "'WORKER'"),
    (["drain"], "'WORKER'"),
    (["drain", "nobody@h"], "'WORKER'"),
    (["drain", W1, "--timeout", "0"], "'--timeout'"),
    (["drain", W1, "--timeout", "nan"], "'--timeout'"),
    (["drain", W1, "--timeout", "999999"], "'--timeout'"),
    (["check"], "'WORKER'"),
    (["status", "--bogus"], "--bogus"),
    (["status", "--events", "many"], "'--events'"),
    (["status", "--events", "1001"], "'--events'"),
    (["chaos", "--seed", "abc"], "'--seed'"),
    (["chaos", "--probability", "nan"], "'--probability'"),
    (["-A", "no_such_module_anywhere", "status"], "'--app'"),
    (["--namespace", "", "status"], "rfqueue_namespace"),
    (["--redis-url", "redis://h:1/0?ssl_cert_reqs=required", "status"], "'--redis-url'"),
    (["--redis-url", "rediss://h:1/0?ssl_cert_reqs=sometimes", "status"], "'--redis-url'"),
    (["--redis-url", "rediss://h:1/0?ssl_ca_certs=/no/such/ca.pem", "status"], "'--redis-url'"),
    (["--redis-url", "rediss://:s3cret@h:1/0?ssl_cert_reqs=no", "status"], "'--redis-url'"),
]


@pytest.mark.parametrize(("argv", "named"), MISUSE, ids=[repr(a) for a, _ in MISUSE])
def test_misuse_is_one_line_exit_2_and_changes_nothing(
    argv: list[str],
    named: str,
    fleet: FailureTable,
    capsys: pytest.CaptureFixture[str],
    dump: Callable[[Any], dict[str, Any]],
) -> None:
    # Given a table with one worker
    before = dump(fleet.client)
    # When the command is misused
    code = main(argv)
    # Then one line on stderr names what was wrong, exit code 2, nothing printed or written
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("rfqueue: error: ") and named in lines[0], lines[0]
    assert "Traceback" not in captured.err and "s3cret" not in captured.err
    assert captured.out == ""
    assert dump(fleet.client) == before


def test_an_unreachable_redis_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a Redis URL where nothing listens, with a password in it
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    # When any command needs the table
    code = main(["--redis-url", url, "status"])
    # Then it says so in one line, exit code 1, without the password
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("rfqueue: error: cannot reach"), lines[0]
    assert "s3cret" not in captured.err + captured.out


def test_malformed_rows_make_one_warning_line_and_status_still_prints(
    fleet: FailureTable, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given junk rows in the table and a junk event
    for name, raw in {"bad1@h": "{oops", "bad2@h": "[1]", "bad3@h": '{"worker": 1}'}.items():
        fleet.client.hset(fleet.keys.workers, name, raw)
    fleet.client.lpush(fleet.keys.events, "not an event")
    for argv in (["status"], ["status", "--json"]):
        # When the status is asked for (each time as a fresh process would)
        rfqueue.table.failure_table._warn_malformed.cache_clear()
        code = main(argv)
        # Then it prints the good worker, and one warning line naming every junk row
        captured = capsys.readouterr()
        assert code == 0
        assert W1 in captured.out and "bad1@h" not in captured.out
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("rfqueue: warning: skipped 3 malformed table entries "), lines
        assert "(bad1@h, bad2@h, bad3@h) and 1 malformed events" in lines[0]
        if "--json" in argv:  # the warning stays on stderr: stdout is still one JSON document
            assert [w["worker"] for w in json.loads(captured.out)["workers"]] == [W1]
