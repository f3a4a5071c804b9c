"""The study behind docs/balancing.md: its commands reproduce its runs; its files are written."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from rfqueue.simulate import study
from rfqueue.simulate.balance import with_baseline
from rfqueue.simulate.command import _params, simulate
from rfqueue.simulate.params import SimulationParams

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parsed(command: str) -> SimulationParams:
    """The parameters ``rfqueue simulate`` would run for ``command``."""
    words = shlex.split(command)
    assert words[:2] == ["rfqueue", "simulate"]
    context = simulate.make_context("simulate", words[2:])
    values = {k: v for k, v in context.params.items() if k not in ("jobs", "png")}
    return with_baseline(_params(values))


@pytest.mark.parametrize(
    "params",
    [
        study.scenario("a", 3, 0.6),
        study.scenario("b", 100, 0.85),
        study.scenario("a", 10_000, 0.85),
        study.scenario("b", 3, 0.6, **study.PAUSES),
        study.scenario("a", 3, 0.85, arrivals="even"),
        study.scenario("b", 100, 0.85, tasks=1000, policies=("spill",), announce_to="all"),
        study.scenario("a", 100, 0.85, tasks=1000, policies=("p2c",), depth_interval=2.0),
        study.at_cost_size(10),
    ],
)
def test_each_table_s_command_runs_exactly_that_table(params: SimulationParams) -> None:
    assert parsed(study.command_line(params)) == with_baseline(params)


def test_a_small_study_writes_its_tables_and_its_figure(tmp_path: Path) -> None:
    tables, png = tmp_path / "tables.md", tmp_path / "grid.png"
    # When a tiny share of the study's grid and its even-sends part run
    result = CliRunner().invoke(
        study.main,
        [
            "--markdown",
            str(tables),
            "--png",
            str(png),
            "--only",
            "grid",
            "--only",
            "even",
            "--scale",
            "0.002",
            "--jobs",
            "1",
        ],
    )
    # Then the tables are there, a command and a table per scenario, and the figure too
    assert result.exit_code == 0, result.output
    text = tables.read_text()
    assert text.count("| shared |") == 12  # (a) and (b) at two loads: 3, 100 workers, even
    assert text.count("```\nrfqueue simulate --model broker") == 12
    assert "## 100 workers" in text and "evenly spaced" in text
    assert png.read_bytes().startswith(PNG_MAGIC)
    study.SCALE["tasks"] = 1.0
