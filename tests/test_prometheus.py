"""deploy/prometheus and the exporter's output, held to Prometheus's own tools (promtool).

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it). Without
it these tests skip locally and fail in CI. The live test, with a running Prometheus
and a fleet, is tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import fakeredis
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from rfqueue.keys import Keys
from rfqueue.monitoring.metrics import TableCollector
from rfqueue.settings import Settings
from rfqueue.table import FailureTable
from rfqueue.table.entry import Reason
from rfqueue.table.snapshot import Snapshot
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
RULE_TESTS = PROMETHEUS / "rules_test.yml"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    require_binary("promtool")
    return subprocess.run(["promtool", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=PROMETHEUS)  # fmt: skip


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_rules_and_the_config_pass_promtool_check() -> None:
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    out = promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    out = promtool("test", "rules", str(RULE_TESTS))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    fired, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_every_alert_says_what_it_means_how_bad_and_waits_on_purpose() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert "for" in rule, f"{rule['alert']}: say its `for`, even 0m"


def exporter_output() -> str:
    """A scrape of a fleet where every series has something to say."""
    client = fakeredis.FakeRedis(decode_responses=True)
    table = FailureTable(client, "t")
    for worker in ("w1@h", "w2@h", "w3@h"):
        table.register(worker, f"rfqueue.{worker}")
    table.pause("w2@h", 60, Reason.CHAOS)
    table.mark_down("w3@h", Reason.SHUTDOWN)
    client.lpush("rfqueue.w2@h", json.dumps({"properties": {"delivery_tag": "x"}}))
    keys, now = Keys("t"), time.time()
    client.hset(keys.rescued, mapping={"from:rfqueue.w2@h": 3, "to:rfqueue.w1@h": 3,
                                       "restored:rfqueue.w1@h": 1})  # fmt: skip
    client.hset(keys.rescue_latency, mapping={"0.5": 2, "count": 2, "sum": 0.7})
    client.hset(keys.routers, "h:1", json.dumps({"read": now, "interval": 1, "reported": now}))
    client.hset(keys.routed, "rfqueue.w1@h", 5)
    settings = Settings.load({}, environ={}, redis_url="redis://:pw@x:6379/0", namespace="t")
    snapshot = Snapshot(table)
    snapshot.refresh()
    registry = CollectorRegistry()
    registry.register(TableCollector(settings, table, snapshot))
    return generate_latest(registry).decode()


def test_promtool_finds_nothing_to_fix_in_the_exporters_output() -> None:
    text = exporter_output()
    assert "rfqueue_rescue_latency_seconds_bucket" in text and "rfqueue_ejections_total" in text
    out = promtool("check", "metrics", stdin=text)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr
