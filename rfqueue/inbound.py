"""The public name of the inbound guard: ``app.steps["consumer"].add(MalformedMessageGuard)``.

The code lives in :mod:`rfqueue.worker.inbound`.
"""

from rfqueue.worker.inbound import MalformedMessageGuard

__all__ = ["MalformedMessageGuard"]
