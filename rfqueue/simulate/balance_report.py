"""The tables of a broker-model comparison: rich on a terminal, Markdown for the docs."""

from __future__ import annotations

from typing import Any

from rfqueue.simulate.balance import DesignComparison, DesignResult
from rfqueue.simulate.params import SimulationParams

#: columns of the table, and how each value reads
COLUMNS = (
    "policy",
    "p50",
    "p99",
    "max",
    "p50 x",
    "p99 x",
    "<= 1.5x",
    "via shared",
    "max load/fair",
    "msgs/task",
    "moved",
    "loop s",
)


def design_title(p: SimulationParams) -> str:
    """One line on the workload every design of the run was given."""
    speeds = "" if p.speeds == (1.0,) else f" (speeds {','.join(f'{s:g}' for s in p.speeds)})"
    feeds = (
        f"{p.routers} routers, depths every {p.depth_interval:g} s, heartbeats every "
        f"{p.heartbeat_interval:g} s, pub/sub {p.announce_latency * 1000:g} ms to "
        f"{p.announce_to}, spill bound {p.spill_bound}"
    )
    pauses = (
        f"pauses {p.pause_rate:g}/s per worker x {p.pause_duration:g} s, "
        f"rescue {'on' if p.rescue else 'off'}"
        if p.pause_rate and p.pause_duration
        else "no pauses"
    )
    return (
        f"rfqueue simulate --model broker: {p.workers:,} workers{speeds}, {p.tasks:,} tasks, "
        f"utilisation {p.utilisation:g}, {p.arrivals} arrivals, {lengths(p)}, {feeds}, "
        f"{pauses}, seed {p.seed}"
    )


def lengths(p: SimulationParams) -> str:
    """The task lengths in words: a mix, or a distribution and its mean."""
    if p.mix:
        return "tasks " + " + ".join(f"{share:.0%} {_ms(length)}" for share, length in p.mix)
    return f"{p.service} tasks, mean {_ms(p.service_mean)}"


def row(r: DesignResult) -> list[str]:
    """One design's cells, in the order of :data:`COLUMNS`."""
    return [
        r.policy,
        _ms(r.p50),
        _ms(r.p99),
        _ms(r.max),
        f"{r.p50_ratio:.2f}",
        f"{r.p99_ratio:.2f}",
        "yes" if r.meets_goal else "no",
        f"{r.shared_share:.0%}",
        f"{r.max_fair_load:.2f}",
        f"{r.messages:.2f}",
        f"{r.moved:,}",
        f"{r.seconds:.1f}",
    ]


def print_designs(comparison: DesignComparison) -> None:
    """The table of a comparison, a row per design (the baseline first), then the wall time."""
    from rich.table import Table

    table = Table()
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "policy" else "right")
    for r in comparison.results:
        table.add_row(*row(r))
    console = _console()
    console.print(design_title(comparison.params), soft_wrap=True)
    console.print(table)
    processes = "1 process" if comparison.jobs == 1 else f"{comparison.jobs} processes"
    console.print(f"wall time {comparison.seconds:.1f} s in {processes}")


def markdown(comparison: DesignComparison, columns: tuple[str, ...] = COLUMNS[:-1]) -> str:
    """The comparison as a Markdown table with the given columns."""
    picks = [COLUMNS.index(c) for c in columns]
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---" if c == "policy" else "---:" for c in columns) + "|")
    for r in comparison.results:
        cells = row(r)
        lines.append("| " + " | ".join(cells[i] for i in picks) + " |")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a file or a pipe: never truncate a policy's name
        console = Console(width=150)
    return console
