"""The PNG of a comparison: waits, balance and the tail of the wait, per policy.

matplotlib's object API (no pyplot, no display), as rfqueue/figure.py: safe anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rfqueue.simulate.results import Comparison

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: one colour per policy, the same in every panel
COLOURS = {
    "random": "#999999",
    "round_robin": "#1f4e79",
    "weighted": "#6fa8dc",
    "least_loaded": "#38761d",
    "p2c": "#e69138",
    "hash": "#a64d79",
}


def draw_comparison(comparison: Comparison, path: Path) -> Path:
    """Draw ``comparison`` as a PNG at ``path``; returns the path."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.4), layout="constrained")
    waits, balance, tail = figure.subplots(1, 3, width_ratios=[1.2, 1, 1.3])
    figure.suptitle(title(comparison), fontsize=11)
    _waits(waits, comparison)
    _balance(balance, comparison)
    _tail(tail, comparison)
    figure.savefig(path, dpi=110)
    return path


def title(comparison: Comparison) -> str:
    """One line on the workload: what every policy of the run was given."""
    p = comparison.params
    service = f"{p.service} service, mean {p.service_mean:g} s"
    if p.service == "lognormal":
        service += f", sigma {p.lognormal_sigma:g}"
    if p.mix:
        service = "tasks " + " + ".join(f"{share:.0%} {length:g} s" for share, length in p.mix)
    if p.speeds != (1.0,):
        service += f", speeds {','.join(f'{s:g}' for s in p.speeds)}"
    if p.arrivals != "poisson":
        service += f", {p.arrivals} arrivals"
    pauses = (
        f"pauses {p.pause_rate:g}/s per worker x {p.pause_duration:g} s"
        if p.pause_rate and p.pause_duration
        else "no pauses"
    )
    rescue = "rescue on" if p.rescue else "rescue off"
    return (
        f"rfqueue simulate: {p.workers:,} workers, {p.tasks:,} tasks, "
        f"utilisation {p.utilisation:g}, {service}, {pauses}, {rescue}, seed {p.seed}"
    )


def _waits(ax: Axes, comparison: Comparison) -> None:
    names = [r.policy for r in comparison.results]
    spots = range(len(names))
    colours = [COLOURS[n] for n in names]
    ax.bar(
        [x - 0.2 for x in spots],
        [r.mean_wait for r in comparison.results],
        0.4,
        color=colours,
        alpha=0.45,
        label="mean",
    )
    ax.bar(
        [x + 0.2 for x in spots],
        [r.p99_wait for r in comparison.results],
        0.4,
        color=colours,
        label="p99",
    )
    ax.set_xticks(list(spots), names, rotation=30, ha="right", fontsize=9)
    ax.set_ylabel("wait in queue (s)")
    ax.set_title("wait: mean (light) and p99 (dark)", fontsize=10)


def _balance(ax: Axes, comparison: Comparison) -> None:
    names = [r.policy for r in comparison.results]
    ax.bar(names, [r.max_mean_load for r in comparison.results], color=[COLOURS[n] for n in names])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_ylim(0.9, max(r.max_mean_load for r in comparison.results) * 1.05)
    ax.tick_params(axis="x", rotation=30, labelsize=9)
    ax.set_ylabel("busiest worker's tasks / mean")
    ax.set_title("balance: tasks served per worker", fontsize=10)


def _tail(ax: Axes, comparison: Comparison) -> None:
    for r in comparison.results:
        waits, shares = zip(*r.tail, strict=True)
        # Dashed: with equal weights, weighted draws exactly on top of round_robin.
        style = "--" if r.policy == "weighted" else "-"
        ax.step(waits, shares, style, where="post", color=COLOURS[r.policy], lw=1.4, label=r.policy)
    ax.set_yscale("log")
    ax.set_xlabel("wait in queue (s)")
    ax.set_ylabel("share of tasks that waited longer")
    ax.set_title("tail of the wait", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
