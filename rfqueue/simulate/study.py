"""The study behind docs/balancing.md: issue 13's scenarios, every design, and sweeps.

    python -m rfqueue.simulate.study --markdown balancing-tables.md --png docs/balancing.png

Scenarios: (a) every third worker 5x slower (5 ms against 25 ms per task); (b) equal
workers, one task in ten 100 ms, the rest 5 ms; each at 60 % and 85 % of capacity,
on 3, 100 and 10,000 workers; (c) both at 60 % with pauses. Then the sensitivity of
the designs to the spill bound, the pub/sub latency and fan-out, the number of
routers and the depth interval. Each table comes with the ``rfqueue simulate``
command that prints it alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click

from rfqueue.simulate.balance import DesignComparison, compare_designs
from rfqueue.simulate.balance_report import markdown
from rfqueue.simulate.params import BROKER_POLICIES, SimulationParams

SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "a": (
        "one worker in three 5x slower (5 ms against 25 ms)",
        {"service": "constant", "service_mean": 0.005, "speeds": (1.0, 1.0, 0.2)},
    ),
    "b": (
        "equal workers, one task in ten 100 ms, the rest 5 ms",
        {"mix": ((0.9, 0.005), (0.1, 0.1))},
    ),
}
LOADS = (0.6, 0.85)
#: the designs run on 10,000 workers (the blind and stale ones are settled by then)
LARGE = ("shared", "round_robin", "p2c", "least_outstanding", "p2c_ewma", "spill")
PAUSES = {"pause_rate": 0.05, "pause_duration": 2.0}
#: sweeps: option, values, designs, on 100 workers at 85 %
SWEEPS: tuple[tuple[str, tuple[Any, ...], tuple[str, ...]], ...] = (
    ("spill_bound", (0, 1, 2, 3), ("spill",)),
    ("announce_latency", (0.0001, 0.001, 0.005), ("spill", "jiq")),
    ("announce_to", ("one", "all"), ("spill", "jiq")),
    ("routers", (1, 4, 16, 64), ("spill", "p2c", "least_outstanding", "p2c_ewma")),
    ("depth_interval", (0.05, 0.5, 2.0), ("spill", "p2c", "least_loaded", "jiq", "sed")),
)
SWEEP_TASKS = 300_000
#: the cost part: fleet sizes, designs, tasks per run (scenario b at 85 %)
COST_SIZES = (10, 1_000, 10_000)
COST_DESIGNS = ("spill", "jiq", "p2c", "least_outstanding", "p2c_ewma", "least_loaded", "sed")
COST_TASKS = 300_000
#: tasks per run by fleet size: enough for a steady p99 (the 10,000 fleets span 2-5 s)
TASKS = {3: 200_000, 100: 1_000_000, 10_000: 3_000_000}
#: every run's tasks times this (``--scale``: a quick look, or a test)
SCALE = {"tasks": 1.0}
#: the first lines of the tables' file
HEADER = """# Balancing: every run of the study

Written by `python -m rfqueue.simulate.study` (rfqueue/simulate/study.py); the findings
are in [balancing.md](balancing.md). Latencies run from send to done; `p50 x` and
`p99 x` are over plain Celery's (`shared`) in the same run; `via shared` is the share
of tasks whose last routing sent them to the pool's shared queue; `max load/fair` the
busiest worker's tasks over its speed's share; `msgs/task` the pub/sub messages the
design's feeds cost; `moved` the tasks the rescue routed again."""
#: the parts of the study, in the order they run
PARTS = ("grid", "large", "pauses", "even", "cost", "sweeps")


def cost(jobs: int | None) -> str:
    """Microseconds of the event loop per task, by design and fleet size (scenario b, 85 %).

    The loop routes, serves and feeds: it is an upper bound on a router's own cost per
    task, and its growth with the fleet is the growth of the router's.
    """
    header = ["design", *(f"{n:,} workers" for n in COST_SIZES)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(COST_SIZES)]
    micros: dict[str, list[str]] = {}
    for n in COST_SIZES:
        c = compare_designs(at_cost_size(n), jobs)
        for r in c.results:
            micros.setdefault(r.policy, []).append(f"{r.seconds / c.params.tasks * 1e6:.1f} us")
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in micros.items()]
    example = command_line(at_cost_size(COST_SIZES[-1]))
    return "## Loop cost per task\n\n```\n" + example + "\n```\n\n" + "\n".join(lines)


def at_cost_size(workers: int) -> SimulationParams:
    return scenario("b", workers, 0.85, policies=COST_DESIGNS, tasks=COST_TASKS)


def scenario(name: str, workers: int, load: float, **extra: Any) -> SimulationParams:
    """The broker-model parameters of scenario ``name`` (a or b) at ``load``."""
    values: dict[str, Any] = {
        "workers": workers,
        "tasks": TASKS.get(workers, COST_TASKS),
        **SCENARIOS[name][1],
        "utilisation": load,
        "pause_rate": 0.0,
        "model": "broker",
        "policies": BROKER_POLICIES if workers < 10_000 else LARGE,
    }
    values.update(extra)
    values["tasks"] = max(1, round(values["tasks"] * SCALE["tasks"]))
    return SimulationParams(**values)


def command_line(p: SimulationParams) -> str:
    """The ``rfqueue simulate`` command that runs ``p`` alone."""
    defaults = SimulationParams(model="broker")
    words = ["rfqueue simulate --model broker"]
    for name in ("workers", "tasks", "utilisation", "arrivals", "service", "service_mean"):
        if getattr(p, name) != getattr(defaults, name) and not (p.mix and "service" in name):
            words.append(f"--{name.replace('_', '-')} {getattr(p, name)}")
    if p.speeds != defaults.speeds:
        words.append("--speeds " + ",".join(f"{s:g}" for s in p.speeds))
    if p.mix:
        words.append("--mix " + ",".join(f"{a:g}:{b:g}" for a, b in p.mix))
    for name in ("pause_rate", "pause_duration", "routers", "depth_interval",
                 "announce_latency", "announce_to", "spill_bound", "seed"):  # fmt: skip
        if getattr(p, name) != getattr(defaults, name):
            words.append(f"--{name.replace('_', '-')} {getattr(p, name)}")
    if set(p.policies) != set(BROKER_POLICIES):
        words.extend(f"--policy {name}" for name in p.policies if name != "shared")
    return " ".join(words)


def grid(workers: int, jobs: int | None, **extra: Any) -> Iterator[tuple[str, DesignComparison]]:
    """Scenarios a and b at both loads on ``workers``, as (label, comparison)."""
    for name in SCENARIOS:
        for load in LOADS:
            label = f"({name}) {load:.0%}"
            yield label, compare_designs(scenario(name, workers, load, **extra), jobs)


def section(title: str, comparisons: Sequence[tuple[str, DesignComparison]]) -> str:
    """A Markdown section: per comparison, its heading, its command and its table."""
    parts = [f"## {title}"]
    for label, comparison in comparisons:
        name = label[1]
        parts.append(f"### {label}: {SCENARIOS[name][0]}, {comparison.params.workers:,} workers")
        parts.append(f"```\n{command_line(comparison.params)}\n```")
        parts.append(markdown(comparison))
        parts.append(f"(wall time {comparison.seconds:.0f} s)")
    return "\n\n".join(parts)


def sweep(option: str, values: Sequence[Any], designs: tuple[str, ...], jobs: int | None) -> str:
    """One parameter swept on 100 workers at 85 %, both scenarios: ratios per design."""
    header = ["scenario", option] + [f"{d} p50 x / p99 x" for d in designs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    commands = []
    for name in SCENARIOS:
        for value in values:
            p = scenario(name, 100, 0.85, tasks=SWEEP_TASKS, policies=designs, **{option: value})
            if value == values[0]:
                commands.append(command_line(p))
            c = compare_designs(p, jobs)
            cells = [f"{r.p50_ratio:.2f} / {r.p99_ratio:.2f}" for r in c.results[1:]]
            lines.append(f"| ({name}) | {value} | " + " | ".join(cells) + " |")
    flag = f"--{option.replace('_', '-')}"
    intro = f"The first row of each scenario; the others set {flag} to the row's value:"
    return (
        f"### {option}\n\n{intro}\n\n```\n" + "\n".join(commands) + "\n```\n\n" + "\n".join(lines)
    )


#: a part's sections, and the grids it adds to the figure
Part = tuple[list[str], list[tuple[int, list[tuple[str, DesignComparison]]]]]


def part(name: str, jobs: int | None) -> Part:
    """Run one part of the study."""
    if name == "grid":
        grids = [(workers, list(grid(workers, jobs))) for workers in (3, 100)]
        return [section(f"{w:,} workers", done) for w, done in grids], grids
    if name == "large":
        return [section("10,000 workers", list(grid(10_000, jobs)))], []
    if name == "pauses":
        sections = []
        for workers in (3, 100):
            done = [(label, c) for label, c in grid(workers, jobs, **PAUSES) if "60%" in label]
            sections.append(section(f"(c) pauses, {workers:,} workers", done))
        return sections, []
    if name == "even":
        done = list(grid(3, jobs, arrivals="even"))
        return [section("3 workers, evenly spaced sends (as rfqueue bench)", done)], []
    if name == "cost":
        return [cost(jobs)], []
    return [sweep(option, values, designs, jobs) for option, values, designs in SWEEPS], []


@click.command()
@click.option("--markdown", "out", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="Write the tables here.")  # fmt: skip
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Draw the ratios.")
@click.option("--jobs", type=click.IntRange(min=1), help="Processes per comparison.")
@click.option("--only", type=click.Choice(PARTS), multiple=True,
              help="Run only these parts (repeat it); default all.")  # fmt: skip
@click.option("--scale", type=click.FloatRange(min=1e-6, max=1), default=1.0, show_default=True,
              help="Run this share of every run's tasks (a quick look).")  # fmt: skip
def main(
    out: Path, png: Path | None, jobs: int | None, only: tuple[str, ...], scale: float
) -> None:
    """Run the study; write its tables as Markdown and its figure as a PNG."""
    SCALE["tasks"] = scale
    sections: list[str] = []
    figure: list[tuple[int, list[tuple[str, DesignComparison]]]] = []
    for name in PARTS:
        if name in (only or PARTS):
            more, grids = part(name, jobs)
            sections += more
            figure += grids
            out.write_text("\n\n".join([HEADER, *sections]) + "\n")  # kept if stopped
            click.echo(f"{name}: done", err=True)
    if png is not None and figure:
        from rfqueue.simulate.balance_figure import draw_grid

        click.echo(f"figure written to {draw_grid(figure, png)}")


if __name__ == "__main__":
    main()
