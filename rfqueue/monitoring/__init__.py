"""What operators look at: the Prometheus exporter (:mod:`~rfqueue.monitoring.metrics`).

Layering: reads the table and the brokers; nothing below imports it.
"""
