"""Router cost alone: a thin alias of ``rfqueue bench --only routing``.

    .venv/bin/python benchmarks/route_cost.py [--quick]

The suite itself lives in :mod:`rfqueue.bench` (``make bench`` runs all of it).
"""

from __future__ import annotations

import sys

from rfqueue.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--only", "routing", *sys.argv[1:]]))
