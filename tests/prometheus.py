"""A private ``prometheus`` server for tests and figures, and the dashboard's queries.

:class:`PrometheusServer` runs Debian's ``prometheus`` on a free loopback port, with a
temporary config that scrapes the given targets (as job ``rfqueue``, the job the alert
rules name) and evaluates deploy/prometheus/rules.yml, its data in a temporary folder;
it is stopped by pid. Queries go through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rfqueue.demo.fleet import ManagedProcess, free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "rfqueue.json"


class PrometheusServer:
    """``prometheus`` scraping ``targets`` every ``interval``, evaluating ``rules`` as often."""

    def __init__(
        self, directory: Path, targets: Sequence[str], interval: str = "1s", rules: Path = RULES
    ) -> None:
        self.directory = directory
        self.targets = list(targets)
        self.interval = interval
        self.rules = rules
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._config()))
        argv = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process = ManagedProcess(argv, self.directory / "prometheus.log")
        wait_for(self._ready, timeout, interval=0.2, what="prometheus to be ready")
        return self

    def _config(self) -> dict[str, Any]:
        return {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "rule_files": [str(self.rules)],
            "scrape_configs": [
                {"job_name": "rfqueue", "static_configs": [{"targets": self.targets}]}
            ],
        }

    def _ready(self) -> bool:
        assert self.process is not None
        if not self.process.alive():
            raise RuntimeError(f"prometheus exited:\n{self.process.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>``; the ``data`` of a successful answer, else an error."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            answer = json.loads(response.read())
        if answer.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now: the vector's samples."""
        return list(self.api("query", query=expr)["result"])

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        return list(self.api("query_range", query=expr, start=start, end=end, step=step)["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def value(samples: list[dict[str, Any]]) -> float | None:
    """The value of an instant query's single sample (None when there is none)."""
    return float(samples[0]["value"][1]) if len(samples) == 1 else None


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str, str]]:
    """``(panel title, legend, PromQL)`` of every target of every panel of the dashboard."""
    dashboard = json.loads(path.read_text())
    return [
        (panel["title"], target.get("legendFormat", ""), target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def annotation_queries(path: Path = DASHBOARD) -> dict[str, str]:
    """``{name: PromQL}`` of the dashboard's Prometheus annotations."""
    dashboard = json.loads(path.read_text())
    return {a["name"]: a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a}
