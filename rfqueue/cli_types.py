"""Click parameter checks shared by the ``rfqueue`` commands."""

from __future__ import annotations

import math

import click


def finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """Reject NaN and infinity, which FloatRange lets through."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value
