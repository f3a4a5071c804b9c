"""The reference deployment's producer: ``workers.tasks.record`` at a steady rate.

    python -m workers.producer --rate 50 --duration 30 [--ledger KEY] [--sleep S] [--count N]

The producer itself is rfqueue's (:mod:`rfqueue.demo.producer`); this module gives it
the reference app's task. docker-compose.yml and the integration tests run exactly
:data:`PRODUCER_COMMAND`.
"""

from __future__ import annotations

import sys

from rfqueue.demo import producer
from workers.tasks import record

#: the producer's command; docker-compose.yml and the integration tests run exactly this
PRODUCER_COMMAND = ("python", "-m", "workers.producer")

#: the producer's click command (``--rate``, ``--duration``, ...)
cli = producer.cli


def main(argv: list[str] | None = None) -> int:
    """Entry point: usage errors and Redis errors as one line each."""
    return producer.main(record, argv)


if __name__ == "__main__":
    sys.exit(main())
