"""``rfqueue flower``'s bad input: one line naming the argument, exit code 2, nothing started.

Each case fails before Flower would start (and before Tornado's global options change).
"""

from __future__ import annotations

import pytest

from rfqueue.cli import main


@pytest.mark.usefixtures("use_fake_redis")
@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["flower", "--prot=5555"], {}, "'--prot=5555' is not a Flower option"),
        (["flower", "now"], {}, "'now' is not a Flower option"),
        (["flower", "--port=abc"], {}, "'--port'"),
        (["flower", "--port"], {}, "Option 'port' requires a value"),
        (["flower", "-A", "no.such.module"], {}, "'--app'"),
        (["flower"], {"RFQUEUE_MAX_PAUSED": "lots"}, "RFQUEUE_MAX_PAUSED"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    named: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rfqueue: error: ") and named in err


def test_an_unreachable_table_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--redis-url", "redis://:s3cret@127.0.0.1:1/0", "flower"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rfqueue: error: cannot reach the failure table's Redis")
    assert err.count("\n") == 1 and "s3cret" not in err


def test_help_names_flower_s_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flower", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--basic-auth" in out and "--url_prefix" in out and "-A, --app" in out
