"""``rfqueue forget``: remove a worker that left, without stranding what its queue holds.

A worker still running (up, paused, draining) would beat its way back in, and its queue
would be left where no rescuer looks: it is refused unless ``--force``, which first marks
it down so that no router chooses it any more. Whatever waits in its queue then moves to
up workers of its pools, as the rescue would move it; when some of it has nowhere to go,
nothing is forgotten and the command says how many tasks are left (exit 2).
"""

from __future__ import annotations

import click

from rfqueue.brokers import Broker
from rfqueue.cli.context import Context, refusals
from rfqueue.control import known_entry
from rfqueue.routing.policies import create_policy
from rfqueue.routing.routed import RoutedCounts
from rfqueue.table.entry import Entry, Reason, State
from rfqueue.table.snapshot import Snapshot
from rfqueue.worker.choosers import policy_chooser
from rfqueue.worker.rescue import Rescuer


@click.command()
@click.argument("worker")
@click.option(
    "--force",
    is_flag=True,
    help="Also a worker that is up, paused or draining: it is marked down first.",
)
@click.pass_obj
def forget(obj: Context, worker: str, force: bool) -> None:
    """Remove WORKER from the table (a retired host), moving its waiting tasks first."""
    table = obj.table
    entry = table.entries().get(worker)
    if entry is not None:
        state = entry.effective_state(table.now())
        if state is not State.DOWN and not force:
            raise click.BadParameter(
                f"{worker} is {state.value}; stop or drain it first, or use --force",
                param_hint="'WORKER'",
            )
        if state is not State.DOWN:
            table.mark_down(worker, Reason.MANUAL)  # no router chooses it from now on
        broker = obj.broker()
        if broker is not None:
            _empty_queue(obj, broker, entry, restore=state is State.DOWN)
    change = table.forget(worker, force=force)
    with refusals():
        known_entry(table, worker, change)
    if change.status == "state":  # it beat its way back in meanwhile
        raise click.BadParameter(f"{worker} came back; nothing forgotten", param_hint="'WORKER'")
    click.echo(f"forgot {worker}")


def _empty_queue(obj: Context, broker: Broker, entry: Entry, restore: bool) -> None:
    """Move what waits in ``entry``'s queue to up workers, or refuse with what is left.

    ``restore``: also put back what a down worker held unacknowledged (a running
    worker, forced out, still acknowledges its own).
    """
    waiting = broker.depths([entry.queue]).get(entry.queue, 0)
    if not waiting and not restore:
        return
    settings = obj.settings
    snapshot = Snapshot(obj.table, settings.refresh_interval, settings.heartbeat_timeout,
                        settings.departed_silence)  # fmt: skip
    snapshot.refresh()
    policy = create_policy(settings)
    policy.start(snapshot, RoutedCounts(), broker.depths)
    rescuer = Rescuer(snapshot, broker, policy_chooser(policy), settings.heartbeat_timeout,
                      default_pool=obj.default_pool)  # fmt: skip
    left = rescuer.evacuate(entry.queue, restore)
    if left:
        raise click.BadParameter(
            f"{entry.worker}'s queue holds {left} tasks no up worker can take; "
            "nothing forgotten (start a worker of its pools, or wait)",
            param_hint="'WORKER'",
        )
    if waiting:
        click.echo(f"moved {waiting} waiting tasks of {entry.worker} to up workers")
