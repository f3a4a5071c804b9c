"""Draw the Grafana dashboard's panels from a real run, with matplotlib (docs/dashboard.png).

    .venv/bin/python -m deploy.grafana.figure [--duration 90] [--out docs/dashboard.png]

Run from the repository root. It starts, each on a free loopback port and stopped by
pid at the end: a private redis-server, three reference workers (``celery -A
workers.app worker``), beat with the chaos job (a tick every 3 s, pauses of 3 to 8 s,
``max_paused`` 1), the producer (``python -m workers.producer``, tasks of 50 ms at 30/s),
``rfqueue metrics`` and Prometheus (Debian's ``prometheus``) scraping it every second.
Partway through it kills worker w3 with SIGKILL and starts it again. Then it asks
Prometheus for every query of deploy/grafana/dashboards/rfqueue.json over the run
and draws each panel where the dashboard puts it, with the pause annotations as
dashed lines. Series that stayed at 0 throughout (a reason that never occurred) are
left out of the legends. Grafana itself is not needed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from rfqueue.demo.fleet import Fleet, ManagedProcess, RedisServer, free_port, wait_for
from tests.conftest import FAST
from tests.prometheus import DASHBOARD, PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
CHAOS = {
    "RFQUEUE_CHAOS_ENABLED": "true",
    "RFQUEUE_CHAOS_INTERVAL": "3",
    "RFQUEUE_CHAOS_PROBABILITY": "0.6",
    "RFQUEUE_CHAOS_MIN_DURATION": "3",
    "RFQUEUE_CHAOS_MAX_DURATION": "8",
    "RFQUEUE_MAX_PAUSED": "1",
}
STATES = {1: ("up", "#73bf69"), 2: ("paused", "#fade2a"), 3: ("draining", "#5794f2"),
          4: ("down", "#f2495c")}  # fmt: skip


@click.command()
@click.option("--duration", default=90, show_default=True, help="Seconds of production.")
@click.option("--out", default="docs/dashboard.png", show_default=True, type=click.Path())
@click.option("--data", type=click.Path(), help="Save the queried series here (JSON).")
@click.option("--from-data", type=click.Path(exists=True), help="Draw saved series; no run.")
def main(duration: int, out: str, data: str | None, from_data: str | None) -> None:
    """Run a small fleet under chaos, scrape it with Prometheus, draw the dashboard."""
    if from_data:
        saved = json.loads(Path(from_data).read_text())
    else:
        saved = dict(zip(("began", "end", "results"), record(duration), strict=True))
        if data:
            Path(data).write_text(json.dumps(saved))
    draw(saved["began"], saved["end"], saved["results"], Path(out))
    click.echo(f"drew {out}: {len(saved['results']['panels'])} panels, "
               f"{saved['end'] - saved['began']:.0f} s of run")  # fmt: skip


def record(duration: int) -> tuple[float, float, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="rfqueue-dashboard-") as tmp:
        workdir = Path(tmp)
        (workdir / "redis").mkdir()
        server = RedisServer(workdir / "redis", appendonly=False).start()
        try:
            return run(server, workdir, duration)
        finally:
            server.stop()


def run(server: RedisServer, workdir: Path, duration: int) -> tuple[float, float, dict[str, Any]]:
    env = {**FAST, **CHAOS, "CELERY_BROKER_URL": server.url, "RFQUEUE_REDIS_URL": server.url}
    fleet = Fleet(server.url, workdir, env=env, cwd=ROOT, app="workers.app")
    others: list[Any] = []
    try:
        for name in ("w1", "w2", "w3"):
            fleet.start_worker(name, "--concurrency", "1")
        for name in ("w1", "w2", "w3"):
            fleet.wait_ready(name)
        port = free_port()
        rfqueue = str(Path(sys.executable).with_name("rfqueue"))
        exporter = [rfqueue, "metrics", "--port", str(port)]
        log = workdir / "metrics.log"
        others.append(ManagedProcess(exporter, log, {**os.environ, **env}, ROOT))
        prometheus = PrometheusServer(workdir / "prometheus", [f"127.0.0.1:{port}"]).start()
        others.append(prometheus)
        began = time.time()
        fleet.start_beat()
        producer = [sys.executable, "-m", "workers.producer", "--rate", "30",
                    "--duration", str(duration), "--sleep", "0.05"]  # fmt: skip
        others.append(ManagedProcess(producer, workdir / "producer.log", fleet.env, ROOT))
        time.sleep(duration * 0.4)
        fleet.workers["w3"].signal(signal.SIGKILL)  # a crash: down, its unacked tasks restored
        time.sleep(duration * 0.2)
        fleet.start_worker("w3", "--concurrency", "1")
        time.sleep(duration * 0.4 + 10)  # the rest of production, and the queues drain
        end = time.time()
        wait_for(lambda: prometheus.query("up") != [], 10, what="prometheus to answer")
        return began, end, query_dashboard(prometheus, began, end)
    finally:
        for process in reversed(others):
            process.stop()
        fleet.stop()


def query_dashboard(prometheus: PrometheusServer, began: float, end: float) -> dict[str, Any]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = []
    for panel in dashboard["panels"]:
        series = []
        for target in panel["targets"]:
            for result in prometheus.query_range(target["expr"], began, end):
                label = legend(target.get("legendFormat", ""), result["metric"])
                points = [(float(t), float(v)) for t, v in result["values"]]
                series.append({"label": label, "points": points})
        panels.append({**panel, "series": series})
    pauses = [
        t
        for a in dashboard["annotations"]["list"]
        if a.get("name") == "Pauses"
        for result in prometheus.query_range(a["expr"], began, end)
        for t in starts([float(t) for t, _ in result["values"]])
    ]
    return {"panels": panels, "pauses": pauses}


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template) or "value"


def starts(times: list[float], gap: float = 1.5) -> list[float]:
    """The first time of each run of consecutive points: when an annotation begins."""
    return [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > gap]


def draw(began: float, end: float, results: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    panels = results["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = Figure(figsize=(18, rows * 0.6 + 1))
    figure.suptitle("rfqueue dashboard: 3 workers under chaos, w3 killed and restarted "
                    f"(Prometheus, {end - began:.0f} s, drawn with matplotlib)")  # fmt: skip
    for panel in panels:
        ax = figure.add_axes(_where(panel["gridPos"], rows))
        ax.set_title(panel["title"], fontsize=10, loc="left")
        if panel["type"] == "state-timeline":
            _timeline(ax, panel["series"], began)
        else:
            _lines(ax, panel, began)
        for t in results["pauses"]:
            ax.axvline(t - began, color="#b58900", linestyle="--", linewidth=0.6, alpha=0.6)
        ax.set_xlim(0, end - began)
        ax.set_xlabel("seconds into the run", fontsize=7)
        ax.tick_params(labelsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)


def _where(pos: dict[str, int], rows: int) -> tuple[float, float, float, float]:
    """The panel's rectangle in figure fractions, as Grafana's 24-column grid places it,
    less room for its title, ticks and axis label."""
    top_margin, height = 0.04, 0.96 / rows
    left = pos["x"] / 24 + 0.035
    width = pos["w"] / 24 - 0.045
    bottom = 1 - top_margin - (pos["y"] + pos["h"]) * height + 0.03
    return left, bottom, width, pos["h"] * height - 0.05


def _timeline(ax: Any, series: list[dict[str, Any]], began: float) -> None:
    for row, s in enumerate(sorted(series, key=lambda s: s["label"], reverse=True)):
        for t, code in s["points"]:
            colour = STATES.get(int(code), ("", "#cccccc"))[1]
            ax.barh(row, 1.0, left=t - began, height=0.8, color=colour, linewidth=0)
    labels = sorted((s["label"] for s in series), reverse=True)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    handles = [_patch(colour, name) for name, colour in STATES.values()]
    ax.legend(handles=handles, fontsize=7, loc="upper left", ncols=4)


def _patch(colour: str, name: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, label=name)


def _lines(ax: Any, panel: dict[str, Any], began: float) -> None:
    for s in panel["series"]:
        points = [(t - began, v) for t, v in s["points"] if v == v]  # NaN: no observation
        if any(v for _, v in points):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=s["label"], linewidth=1.1)
    unit = panel["fieldConfig"]["defaults"].get("unit")
    ax.set_ylabel({"s": "seconds", "reqps": "per second"}.get(unit, ""), fontsize=8)
    if panel["series"]:
        ax.legend(fontsize=7, loc="upper left", ncols=2)


if __name__ == "__main__":
    main()
