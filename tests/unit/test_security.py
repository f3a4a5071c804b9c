"""Security settings that need no server: JSON only, TLS defaults, masked URLs, no raw URL printed.

The same promises on real processes are in tests/faults/test_security.py.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rfqueue.cli import Context
from rfqueue.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]

#: the names under which rfqueue and the reference app hold a Redis or broker URL
URL_NAMES = {"url", "redis_url", "broker_url", "broker", "broker_write_url"}
#: calls that make a URL safe to print
MASKS = {"_masked", "maybe_sanitize_url", "safe_redis_url"}
#: calls that print or log their arguments
OUTPUT_CALLS = {"print", "echo", "secho", "debug", "info", "warning", "error", "exception"}


def test_the_reference_app_speaks_json_only() -> None:
    from workers.app import app

    conf = app.conf
    assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
    assert conf.event_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_the_cli_remote_control_app_accepts_json_only() -> None:
    control = Context(Settings(), None).control()
    assert list(control.app.conf.accept_content) == ["json"]


def broker_ssl_of_the_reference_app(broker_url: str) -> str:
    """``broker_use_ssl`` as workers.app sets it for ``broker_url`` (read at import)."""
    code = "from workers.app import app; print(app.conf.broker_use_ssl)"
    env = {**os.environ, "CELERY_BROKER_URL": broker_url}
    env.pop("RFQUEUE_REDIS_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_bare_rediss_broker_url_checks_the_server_certificate() -> None:
    # kombu alone would connect without checking the certificate
    assert "CERT_REQUIRED" in broker_ssl_of_the_reference_app("rediss://:pw@127.0.0.1:1/0")


def test_a_rediss_url_with_its_own_tls_parameters_is_left_to_them() -> None:
    url = "rediss://127.0.0.1:1/0?ssl_cert_reqs=optional"
    assert broker_ssl_of_the_reference_app(url) == "False"  # Celery's default: the URL decides
    assert broker_ssl_of_the_reference_app("redis://127.0.0.1:1/0") == "False"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:1/0", "redis://:**@h:1/0"),
        ("redis://user:s3cret@h/0", "redis://user:**@h/0"),
        ("rediss://:s3cret@h:1/0?ssl_cert_reqs=required", "rediss://:**@h:1/0"),
        ("unix://:s3cret@/run/redis.sock?db=0", "unix://:**@/run/redis.sock"),
        ("redis://h/0?password=s3cret", "redis://h/0"),
    ],
)
def test_safe_redis_url_masks_every_password(url: str, shown: str) -> None:
    assert Settings(redis_url=url).safe_redis_url == shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@h:port/0",
        "http://:s3cret@h/0",
        "redis://:s3cret@h/0?ssl_cert_reqs=required",
        "rediss://:s3cret@h/0?ssl_cert_reqs=never",
        "rediss://:s3cret@h/0?ssl_ca_certs=/no/such/ca.pem",
    ],
)
def test_a_bad_url_is_refused_without_showing_its_password(url: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(redis_url=url)
    assert str(caught.value).startswith("rfqueue_redis_url: ")
    assert "s3cret" not in str(caught.value)


def test_tls_parameters_that_exist_are_accepted(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read until a connection is made")
    url = f"rediss://:pw@h:1/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    assert Settings(redis_url=url).redis_url == url


def raw_url_outputs(source: str, label: str) -> list[str]:
    """``label:line`` of every print, echo or log call in ``source`` given an unmasked URL."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _called_name(node) in OUTPUT_CALLS:
            arguments = [*node.args, *(k.value for k in node.keywords)]
            if any(_unmasked_url(arg) for arg in arguments):
                found.append(f"{label}:{node.lineno}")
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _unmasked_url(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and _called_name(node) in MASKS:
        return False
    if isinstance(node, ast.Attribute) and node.attr in MASKS:
        return False
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
    if name in URL_NAMES:
        return True
    return any(_unmasked_url(child) for child in ast.iter_child_nodes(node))


def test_no_code_prints_or_logs_a_raw_redis_url() -> None:
    sources = [*sorted((ROOT / "rfqueue").rglob("*.py")), *sorted((ROOT / "workers").glob("*.py"))]
    found = [
        where
        for path in sources
        for where in raw_url_outputs(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_raw_url_check_catches_a_leak() -> None:
    source = (
        "logger.info('at %s', settings.redis_url)\n"
        "click.echo(f'at {url}')\n"
        "click.echo(f'at {settings.safe_redis_url}')\n"
        "logger.info('at %s', _masked(url))\n"
    )
    assert raw_url_outputs(source, "leaky.py") == ["leaky.py:1", "leaky.py:2"]
