"""The ``rfqueue`` command line: the table's commands, and the demo's, bench's, simulation's
and exporter's commands gathered under one group.

Layering: the top of the house; it may import every other part of rfqueue, and nothing
in the library imports it.
"""

from rfqueue.cli.context import Context
from rfqueue.cli.main import cli, main

__all__ = ["Context", "cli", "main"]
