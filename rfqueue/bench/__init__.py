"""``rfqueue bench``: rfqueue measured against plain Celery, side by side, as ratios.

One module per family: :mod:`~rfqueue.bench.routing` (router cost),
:mod:`~rfqueue.bench.memory`, :mod:`~rfqueue.bench.publish` (publish throughput and
batch dispatch), :mod:`~rfqueue.bench.balance`, :mod:`~rfqueue.bench.e2e`,
:mod:`~rfqueue.bench.propagation` and :mod:`~rfqueue.bench.chaos` (run together by
:mod:`~rfqueue.bench.failover`); :mod:`~rfqueue.bench.cli` is the command and
:mod:`~rfqueue.bench.report` the table and the document.
"""
