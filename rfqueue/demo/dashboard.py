"""The demo's live terminal dashboard (rich), or plain progress lines when not on a terminal.

It draws a :class:`rfqueue.demo.monitor.FleetView`: each worker's state with the pause
countdown, its queue's true depth, tasks done and current rate; the totals; the
latest events of the failure table; a progress bar for the run.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from rfqueue.demo.monitor import FleetView, WorkerRow
from rfqueue.table import Event

STATE_STYLES = {"up": "green", "paused": "yellow", "draining": "cyan", "down": "red"}
#: seconds between plain lines when stdout is not a terminal
PLAIN_INTERVAL = 5.0


def say(console: Console, text: str) -> None:
    """Print ``text`` as it is: no markup, no highlighting, no wrapping inside words."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def state_text(row: WorkerRow) -> str:
    """``paused 3.2s (chaos)``, ``up``, ``down (shutdown)``."""
    text = row.state
    if row.left is not None:
        text += f" {max(0.0, row.left):.1f}s"
    if row.reason:
        text += f" ({row.reason})"
    return text


def workers_table(view: FleetView) -> Table:
    """One row per worker; its pools in a column when they differ, else in the title."""
    kinds = {row.pools for row in view.rows}
    by_pool = len(kinds) > 1
    title = "workers"
    if len(kinds) == 1 and (pools := next(iter(kinds))):
        title += f" in pool {', '.join(pools)}"
    grid = Table(title=escape(title), title_justify="left", expand=False)
    grid.add_column("worker")
    if by_pool:
        grid.add_column("pools")
    grid.add_column("state (pause left)")
    grid.add_column("queue depth", justify="right")
    grid.add_column("done", justify="right")
    grid.add_column("tasks/s", justify="right")
    for row in view.rows:
        style = STATE_STYLES.get(row.state, "")
        cells = [escape(",".join(row.pools) or "-")] if by_pool else []
        grid.add_row(
            escape(row.worker),
            *cells,
            f"[{style}]{escape(state_text(row))}[/]",
            str(row.depth),
            str(row.done),
            f"{row.rate:.0f}",
        )
    grid.add_section()
    total = [str(view.depth), str(view.done), f"{view.rate:.0f}"]
    grid.add_row("total", *([""] if by_pool else []), _states_summary(view), *total)
    return grid


def _states_summary(view: FleetView) -> str:
    counts = {s: sum(1 for r in view.rows if r.state == s) for s in STATE_STYLES}
    return " ".join(f"{n} {s}" for s, n in counts.items() if n) or "-"


def event_line(event: Event) -> str:
    """``12:04:31 pause  demo2@host (chaos) for 4.2s``."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.time))
    line = f"{clock} {event.action:<8} {event.worker}"
    if event.reason:
        line += f" ({event.reason})"
    if event.action == "pause" and event.until:
        line += f" for {event.until - event.time:.1f}s"
    return line


def progress_text(view: FleetView) -> str:
    if view.phase == "draining" and view.submitted is not None:
        return f"draining: {view.completed} of {view.submitted} tasks completed"
    if view.phase == "starting":
        return "starting workers"
    return f"producing: {view.elapsed:.0f} of {view.duration:.0f} s"


def progress_bar(view: FleetView) -> ProgressBar:
    if view.phase == "draining" and view.submitted:
        return ProgressBar(total=view.submitted, completed=view.completed, width=50)
    return ProgressBar(total=view.duration, completed=min(view.elapsed, view.duration), width=50)


def render(view: FleetView) -> RenderableType:
    """The whole dashboard for one refresh."""
    events = Text("\n".join(event_line(e) for e in view.events) or "none yet", style="dim")
    return Group(
        workers_table(view),
        Text("latest table events", style="bold"),
        events,
        Text(progress_text(view)),
        progress_bar(view),
    )


def plain_line(view: FleetView) -> str:
    """One line per refresh for logs and pipes."""
    if not view.rows:
        return f"[{progress_text(view)}]"
    workers = " | ".join(
        f"{row.worker.split('@')[0]}: {state_text(row)} depth {row.depth} done {row.done}"
        for row in view.rows
    )
    return f"[{progress_text(view)}] {workers} | {view.rate:.0f} tasks/s"


class Dashboard:
    """Shows views as they come: a live rich display on a terminal, lines otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._live: Live | None = None
        self._last_line = float("-inf")

    def __enter__(self) -> Dashboard:
        if self.live:
            self._live = Live(console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def update(self, view: FleetView, force: bool = False) -> None:
        if self._live is not None:
            self._live.update(render(view), refresh=True)
        elif force or time.monotonic() - self._last_line >= PLAIN_INTERVAL:
            self._last_line = time.monotonic()
            say(self.console, plain_line(view))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, trace)
            self._live = None
