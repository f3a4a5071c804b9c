"""A discrete-event simulation of rfqueue's routing policies under random pauses.

``rfqueue simulate`` (:mod:`rfqueue.simulate.command`) compares the policies on one
workload; :func:`rfqueue.simulate.balls.balls_into_bins` checks the classic max-load
results. Two models: ``exact`` (each worker its own queue, routers that see every
backlog) and ``broker`` (prefetch-1 workers pulling a dedicated and a shared queue,
routers that know what real ones can), which compares designs against plain Celery.
The modules, one concept each:

- :mod:`~rfqueue.simulate.params`: what a run is told, checked (no numpy needed);
- :mod:`~rfqueue.simulate.workload`: arrivals, service times and pauses, drawn in bulk;
- :mod:`~rfqueue.simulate.routers`: the policies, as the simulation routes with them;
- :mod:`~rfqueue.simulate.engine`: the event loop, one policy at a time;
- :mod:`~rfqueue.simulate.results`: per-policy figures, and the runs across processes;
- :mod:`~rfqueue.simulate.figure`: the PNG comparing the policies;
- :mod:`~rfqueue.simulate.broker`, :mod:`~rfqueue.simulate.broker_run`: the broker model;
- :mod:`~rfqueue.simulate.knowledge`: what its routers know (samples, announcements);
- :mod:`~rfqueue.simulate.candidates`, :mod:`~rfqueue.simulate.completions`,
  :mod:`~rfqueue.simulate.designs`: its designs;
- :mod:`~rfqueue.simulate.balance`, :mod:`~rfqueue.simulate.balance_report`,
  :mod:`~rfqueue.simulate.balance_figure`: their figures against plain Celery;
- :mod:`~rfqueue.simulate.study`: the study behind docs/balancing.md.

Nothing here imports numpy at package import, so ``rfqueue`` works without it.
"""
