"""Routing: which queue each task goes to, decided in the publishing process.

:mod:`~rfqueue.routing.router` is the Celery router (a ``task_routes`` entry) that
finds each task's pool as Celery would (:mod:`~rfqueue.routing.destination`) and picks
an up worker of that pool that has the task, by a policy
(:mod:`~rfqueue.routing.policies`), from the process's snapshot of the table, never a
Redis call per task;
:mod:`~rfqueue.routing.routed` counts what it routed; :mod:`~rfqueue.routing.unpin`
sends retries back through it; :mod:`~rfqueue.routing.depth` keeps queue depths in
memory for the load-aware policies; :mod:`~rfqueue.routing.dispatch` publishes many
tasks in pipelined batches, each routed as usual.

Layering: this package may import the table, the brokers and the foundation modules;
it knows nothing of workers, chaos, the CLI or the demo.
"""
