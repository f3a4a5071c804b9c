"""PNGs of the broker model: one comparison, or a study of several scenarios.

matplotlib's object API (no pyplot, no display), as rfqueue/simulate/figure.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rfqueue.simulate.balance import GOAL, DesignComparison
from rfqueue.simulate.balance_report import design_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: one colour per design, the same in every panel
COLOURS = {
    "shared": "#000000",
    "round_robin": "#1f4e79",
    "random": "#999999",
    "p2c": "#e69138",
    "least_loaded": "#38761d",
    "jiq": "#8e7cc3",
    "sed": "#cc0000",
    "least_outstanding": "#45818e",
    "p2c_ewma": "#bf9000",
    "spill": "#a64d79",
}
#: ratios drawn above this are clipped to it (and labelled with their value)
CLIP = 1000.0


def draw_designs(comparison: DesignComparison, path: Path) -> Path:
    """Ratios to plain Celery and the tail of the latency, for one comparison."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4.6), layout="constrained")
    ratios, tail = figure.subplots(1, 2, width_ratios=[1.2, 1])
    figure.suptitle(_wrapped(design_title(comparison.params)), fontsize=9)
    _ratio_bars(ratios, [comparison], [""])
    _tail(tail, comparison)
    figure.savefig(path, dpi=110)
    return path


def draw_grid(
    grids: Sequence[tuple[int, Sequence[tuple[str, DesignComparison]]]], path: Path
) -> Path:
    """p50 and p99 over plain Celery's, per design, a bar per scenario; a column per fleet."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7 * len(grids), 8), layout="constrained")
    axes = figure.subplots(2, len(grids), squeeze=False)
    for column, (workers, done) in enumerate(grids):
        labels = [label for label, _ in done]
        comparisons = [c for _, c in done]
        for row, quantile in enumerate(("p50", "p99")):
            ax = axes[row][column]
            _ratio_bars(ax, comparisons, labels, quantile=quantile)
            ax.set_title(f"{quantile}, {workers:,} workers", fontsize=10)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=9)
    figure.suptitle(
        "rfqueue simulate --model broker: latency (send to done) over plain Celery's shared "
        f"queue (dashed: the goal, {GOAL:g}x)\n(a) one worker in three 5x slower; "
        "(b) one task in ten 100 ms, the rest 5 ms",
        fontsize=10,
    )
    figure.savefig(path, dpi=110)
    return path


def _ratio_bars(
    ax: Axes,
    comparisons: Sequence[DesignComparison],
    labels: Sequence[str],
    quantile: str = "",
) -> None:
    names = [r.policy for r in comparisons[0].results]
    width = 0.8 / (len(comparisons) * (1 if quantile else 2))
    shades = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    k = 0
    for c, (comparison, label) in enumerate(zip(comparisons, labels, strict=True)):
        by_name = {r.policy: r for r in comparison.results}
        for q in (quantile,) if quantile else ("p50", "p99"):
            values = [getattr(by_name[n], f"{q}_ratio") for n in names]
            spots = [x - 0.4 + width * (k + 0.5) for x in range(len(names))]
            colour = shades[c % len(shades)] if quantile else None
            shown = [min(v, CLIP) for v in values]
            bars = ax.bar(
                spots,
                shown,
                width,
                color=colour,
                label=label or q,
                alpha=1.0 if q == "p99" or quantile else 0.5,
            )
            for bar, v in zip(bars, values, strict=True):
                if v > CLIP:  # the bar is cut at CLIP: say how tall it is
                    ax.annotate(f"{v:,.0f}", (bar.get_x() + bar.get_width() / 2, CLIP * 1.1),
                                fontsize=6, rotation=90, ha="center", va="bottom")  # fmt: skip
            k += 1
    highest = max(getattr(r, f"{q}_ratio") for c in comparisons for r in c.results for q in
                  ((quantile,) if quantile else ("p50", "p99")))  # fmt: skip
    lowest = min(1.0, *(r.p50_ratio for c in comparisons for r in c.results))
    # room under 1 for the baseline's bars, and above CLIP for the labels of clipped bars
    ax.set_ylim(lowest * 0.7, CLIP * 12 if highest > CLIP else highest * 1.5)
    ax.axhline(GOAL, color="black", lw=1, ls="--")
    ax.axhline(1.0, color="black", lw=0.6)
    ax.set_yscale("log")
    shown_names = [tick_label(n, comparisons[0].params.spill_bound) for n in names]
    ax.set_xticks(range(len(names)), shown_names, rotation=20, ha="right", fontsize=9)
    what = quantile or "p50 (light) and p99 (dark)"
    ax.set_ylabel(f"{what} latency / plain Celery's")
    ax.set_title(
        f"{what} of the latency over plain Celery's shared queue (dashed: the goal, {GOAL:g}x)",
        fontsize=10,
    )
    if not quantile:
        ax.legend(fontsize=8, frameon=False)


def tick_label(name: str, bound: int) -> str:
    """A design's name on the axis: spill says its bound, shared that it is spill with B = 0."""
    if name == "spill":
        return f"spill B={bound}"
    return "shared = spill B=0" if name == "shared" else name


def _tail(ax: Axes, comparison: DesignComparison) -> None:
    for r in comparison.results:
        latencies, shares = zip(*r.tail, strict=True)
        ax.step(
            latencies,
            shares,
            where="post",
            color=COLOURS.get(r.policy, "#777777"),
            lw=2.0 if r.policy == "shared" else 1.2,
            label=r.policy,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency, send to done (s)")
    ax.set_ylabel("share of tasks that took longer")
    ax.set_title("tail of the latency", fontsize=10)
    ax.legend(fontsize=8, frameon=False)


def _wrapped(text: str, width: int = 150) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
