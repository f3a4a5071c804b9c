"""A discrete-event simulation of rfqueue's routing policies under random pauses.

``rfqueue simulate`` (:mod:`rfqueue.simulate.command`) compares the policies on one
workload; :func:`rfqueue.simulate.balls.balls_into_bins` checks the classic max-load
results. The modules, one concept each:

- :mod:`~rfqueue.simulate.params`: what a run is told, checked (no numpy needed);
- :mod:`~rfqueue.simulate.workload`: arrivals, service times and pauses, drawn in bulk;
- :mod:`~rfqueue.simulate.routers`: the policies, as the simulation routes with them;
- :mod:`~rfqueue.simulate.engine`: the event loop, one policy at a time;
- :mod:`~rfqueue.simulate.results`: per-policy figures, and the runs across processes;
- :mod:`~rfqueue.simulate.figure`: the PNG comparing the policies.

Nothing here imports numpy at package import, so ``rfqueue`` works without it.
"""
