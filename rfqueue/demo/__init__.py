"""``rfqueue demo``: a private Redis, three workers, beat with chaos, Flower, a producer.

Everything only the demo uses lives here: its Celery app (:mod:`~rfqueue.demo.app`),
the audit ledger its tasks write (:mod:`~rfqueue.demo.ledger`), the producer, the
process manager (:mod:`~rfqueue.demo.fleet`, also used by the benchmark and the tests),
the embedded redis-server, the live dashboard, the report and its figure.

Layering: an application on top of the library; nothing in the library imports it
(the benchmark reuses its process manager).
"""
