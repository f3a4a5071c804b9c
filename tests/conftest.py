"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> None:
    """Skip locally without ``name``; in CI (``CI`` set) a missing binary is a failure."""
    if shutil.which(name):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI but is not on PATH")
    pytest.skip(f"{name} not on PATH")
