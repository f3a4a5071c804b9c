"""The demo's figure: each worker's state and throughput over time, then task latency.

Drawn from a ``report.json`` document (:func:`rfqueue.demo.report.build_report`) alone, with
matplotlib's object API (no pyplot, no display): safe in any thread and on a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: one colour per state, the same in every panel and in the legend
STATE_COLOURS = {
    "up": "#d8efd3",
    "paused": "#f6b26b",
    "draining": "#9fc5e8",
    "down": "#e06666",
}
THROUGHPUT_COLOUR = "#1f4e79"
LATENCY_COLOURS = {"p50": "#1f4e79", "p95": "#e69138", "max": "#999999"}


def draw_report(report: dict[str, Any], path: Path) -> Path:
    """Draw ``report`` as a PNG at ``path``; returns the path."""
    from matplotlib.figure import Figure

    workers = sorted(report["timeline"])
    heights = [1.0] * len(workers) + [1.6]
    figure = Figure(figsize=(11, 1.2 * len(workers) + 3.4), layout="constrained")
    axes = figure.subplots(len(heights), 1, sharex=True, height_ratios=heights)
    figure.suptitle(_title(report), fontsize=12)
    peak = max([max(v, default=0) for v in report["throughput_per_s"].values()] + [1])
    for ax, worker in zip(axes, workers, strict=False):
        _worker_panel(ax, worker, report, peak)
    _latency_panel(axes[-1], report)
    figure.legend(
        handles=_legend_handles(),
        loc="outside lower center",
        ncols=4,
        frameon=False,
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    return path


def _title(report: dict[str, Any]) -> str:
    run = report.get("run", {})
    chaos = "chaos on" if run.get("chaos") else "chaos off"
    duration = run.get("duration") or 0
    # The machine may not keep up with the asked rate: say what was really sent.
    sent = f" (sent {report['submitted'] / duration:.0f}/s)" if duration else ""
    head = (
        f"rfqueue demo: {run.get('workers', '?')} workers, {run.get('rate', 0):g} tasks/s asked "
        f"for {duration:g} s{sent}, {chaos}"
    )
    counts = (
        f"submitted {report['submitted']}, completed {report['completed']}, "
        f"lost {report['lost']}, completed more than once {report['completed_more_than_once']}"
    )
    return f"{head}\n{counts}"


def _worker_panel(ax: Axes, worker: str, report: dict[str, Any], peak: int) -> None:
    for band in report["timeline"][worker]:
        ax.axvspan(band["start"], band["end"], color=STATE_COLOURS[band["state"]], lw=0)
    counts = report["throughput_per_s"][worker]
    # Each count belongs to the second that ends at its step: draw it as a step line.
    ax.step(range(len(counts) + 1), [0, *counts], where="pre", color=THROUGHPUT_COLOUR, lw=1.4)
    summary = report["workers"][worker]
    ax.set_title(
        f"{worker}: {summary['tasks']} tasks ({summary['share']:.0%}), "
        f"paused {summary['paused_s']:.1f} s ({_plural(summary['pauses'], 'pause')})",
        loc="left",
        fontsize=9,
    )
    ax.set_ylabel("tasks/s", fontsize=9)
    ax.set_ylim(0, peak * 1.15)
    ax.tick_params(labelsize=8)


def _latency_panel(ax: Axes, report: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    series = report["latency_by_second_sent_ms"]
    seconds = [s + 0.5 for s in range(len(series["p50"]))]
    for name in ("max", "p95", "p50"):
        points = [(t, v) for t, v in zip(seconds, series[name], strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, color=LATENCY_COLOURS[name], lw=1.4, marker=".", label=name)
    overall = report["latency_ms"]
    if overall["p50"] is not None:
        ax.set_title(
            f"task latency, sent to done, by second sent (whole run: p50 {overall['p50']:.0f} ms, "
            f"p95 {overall['p95']:.0f} ms, p99 {overall['p99']:.0f} ms)",
            loc="left",
            fontsize=9,
        )
        ax.set_yscale("log")
        # Plain numbers at 1, 2, 5, 10, 20, 50 ... ms instead of powers of ten.
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("latency (ms)", fontsize=9)
    ax.set_xlabel("seconds since the producer started", fontsize=9)
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="latency", title_fontsize=8
    )
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.tick_params(labelsize=8)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _legend_handles() -> list[Any]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    states = [Patch(color=c, label=f"worker {s}") for s, c in STATE_COLOURS.items()]
    line = Line2D([], [], color=THROUGHPUT_COLOUR, lw=1.4, label="tasks done per second")
    return [*states, line]
