"""The suite's output: one table on the terminal, and the generated part of docs/benchmarks.md.

The document keeps whatever is written outside the markers (profile findings, notes
on misses); only the text between them is replaced by each full run.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rfqueue.bench.common import POLLING_INTERVAL, Row

START = "<!-- rfqueue bench: start (generated; edit outside these markers) -->"
END = "<!-- rfqueue bench: end -->"


@dataclass
class Machine:
    """What the figures were measured on."""

    cores: int
    cpu: str
    memory: str
    python: str
    redis_server: str
    packages: str
    load_before: float
    load_after: float = float("nan")
    #: anything set that changes the figures (one line each)
    settings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [
            f"- {self.cores} cores, {self.cpu}, {self.memory} memory",
            f"- Python {self.python}; {self.packages}",
            f"- redis-server {self.redis_server} on loopback, a private instance started for "
            "the run (no persistence)",
            f"- load average (1 min) {self.load_before:.2f} at the start, "
            f"{self.load_after:.2f} at the end",
            *self.settings,
        ]


def describe_machine(client: Any) -> Machine:
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("celery", "kombu", "redis")
    ).replace("redis ", "redis-py ")
    return Machine(
        cores=os.cpu_count() or 0,
        cpu=_cpu_model(),
        memory=_memory(),
        python=platform.python_version(),
        redis_server=str(client.info("server").get("redis_version", "?")),
        packages=versions,
        load_before=_load(),
        settings=_bench_settings(),
    )


def _bench_settings() -> tuple[str, ...]:
    value = os.environ.get(POLLING_INTERVAL)
    if not value:
        return ()
    return (f"- workers ran with kombu's polling_interval (BRPOP timeout) at {value} s "
            f"({POLLING_INTERVAL}), not the 1 s default",)  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def finish(machine: Machine) -> None:
    machine.load_after = _load()


def verdict(row: Row) -> str:
    met = row.met
    return "-" if met is None else ("met" if met else "MISSED")


def print_table(rows: Sequence[Row], console: Console | None = None) -> None:
    """The one table: every row, its ratio and whether it meets its target."""
    table = Table(title="rfqueue bench (ratio = rfqueue / baseline, medians of paired runs)")
    for column in ("benchmark", "rfqueue", "baseline", "ratio", "target", "verdict"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row.name),
            escape(row.ours),
            escape(row.baseline),
            f"{row.ratio:.3f}",
            escape(row.target or "report"),
            verdict(row),
        )
    (console or Console(width=160)).print(table)


def markdown(
    rows: Sequence[Row], machine: Machine, command: str, seconds: float, note: str | None = None
) -> str:
    """The generated section: command, date, machine, the table and each row's method."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = [
        START,
        "",
        f"Command: `{command}` (run {when}, {seconds:.0f} s).",
        "",
        *machine.lines(),
        *([f"- {note}"] if note else []),
        "",
        "| benchmark | rfqueue | baseline | ratio | target | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = (row.name, row.ours, row.baseline, f"{row.ratio:.3f}", row.target or "report")
        out.append("| " + " | ".join(cells) + f" | {verdict(row)} |")
    out += ["", "How each row was measured:", ""]
    out += [f"- {row.name}: {row.note}." for row in rows if row.note]
    out += ["", END]
    return "\n".join(out)


def write_doc(path: Path, section: str) -> None:
    """Replace the generated section of ``path``, keeping everything around it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def command_line() -> str:
    name = Path(sys.argv[0]).name
    return " ".join(["rfqueue" if name == "rfqueue" else name, *sys.argv[1:]])
