"""``rfqueue simulate --model broker``: every design against plain Celery; bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfqueue.cli import main
from rfqueue.simulate.params import BROKER_POLICIES, ParamError, SimulationParams, parse_mix

SMALL = [
    "simulate",
    "--model",
    "broker",
    "--workers",
    "3",
    "--tasks",
    "3000",
    "--utilisation",
    "0.85",
    "--service",
    "constant",
    "--service-mean",
    "0.005",
    "--speeds",
    "1,1,0.2",
    "--pause-rate",
    "0",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rows(out: str) -> dict[str, list[str]]:
    """The table's rows by policy, as cells."""
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    return {row[0]: row for row in cells if row and row[0] in BROKER_POLICIES}


def test_a_broker_run_compares_every_design_with_plain_celery_and_draws_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "designs.png"
    # When a small broker-model run compares every design, in two processes, and draws them
    code = main([*SMALL, "--jobs", "2", "--png", str(png)])
    out, err = capsys.readouterr()
    # Then every design has a row, the baseline first at ratio 1, and the figure is a PNG
    assert code == 0, err
    table = rows(out)
    assert list(table) == list(BROKER_POLICIES)
    assert table["shared"][4:7] == ["1.00", "1.00", "yes"]
    assert "3 workers (speeds 1,1,0.2), 3,000 tasks" in out and "4 routers" in out
    # and round robin, blind to the slow worker, misses the goal by far
    assert table["round_robin"][6] == "no" and float(table["round_robin"][5]) > 10
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_the_baseline_runs_even_when_not_named(capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*SMALL, "--policy", "spill", "--mix", "0.9:0.005,0.1:0.1", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert list(rows(out)) == ["shared", "spill"]
    assert "tasks 90% 5.0 ms + 10% 100.0 ms" in out


def test_the_same_seed_gives_the_same_table_in_one_process_or_two(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tables = []
    for jobs in ("1", "2"):
        args = [*SMALL, "--policy", "p2c", "--policy", "jiq", "--jobs", jobs]
        assert main(args) == 0
        # (the last column is each loop's wall time, which differs)
        tables.append([row[:-1] for row in rows(capsys.readouterr().out).values()])
    assert tables[0] == tables[1] and len(tables[0]) == 3


BAD = [
    (["--model", "pull"], "'--model'"),
    (["--arrivals", "bursty"], "'--arrivals'"),
    (["--speeds", "1,fast"], "'--speeds'"),
    (["--speeds", "1,0"], "'--speeds'"),
    (["--speeds", "1,-2"], "'--speeds'"),
    (["--speeds", "1,inf"], "'--speeds'"),
    (["--speeds", "1,1,1,1,1,1"], "'--speeds'"),
    (["--mix", "0.5:0.1"], "'--mix'"),
    (["--mix", "0.5:0.1,0.5"], "'--mix'"),
    (["--mix", "a:b"], "'--mix'"),
    (["--mix", "1.5:0.1,-0.5:0.2"], "'--mix'"),
    (["--mix", "1:0"], "'--mix'"),
    (["--routers", "0"], "'--routers'"),
    (["--depth-interval", "0"], "'--depth-interval'"),
    (["--depth-interval", "nan"], "'--depth-interval'"),
    (["--heartbeat-interval", "-1"], "'--heartbeat-interval'"),
    (["--announce-latency", "-0.001"], "'--announce-latency'"),
    (["--announce-to", "some"], "'--announce-to'"),
    (["--spill-bound", "-1"], "'--spill-bound'"),
    (["--spill-bound", "101"], "'--spill-bound'"),
    (["--policy", "hash"], "'--policy'"),
]


@pytest.mark.parametrize(("args", "option"), BAD)
def test_a_bad_broker_parameter_is_one_line_exit_2_and_no_figure(
    args: list[str], option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sim.png"
    # When the broker model is given a bad parameter (and a figure to draw)
    code = main(["simulate", "--model", "broker", "--workers", "5", "--tasks", "100",
                 "--png", str(png), *args])  # fmt: skip
    out, err = capsys.readouterr()
    # Then it exits 2 with one line naming the option, prints no table, draws nothing
    assert code == 2
    assert err.count("\n") == 1 and f"Invalid value for {option}" in err, err
    assert "Traceback" not in err and out == ""
    assert not png.exists()


def test_a_broker_design_is_no_policy_of_the_exact_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["simulate", "--workers", "5", "--tasks", "100", "--policy", "spill"])
    err = capsys.readouterr().err
    assert code == 2 and "Invalid value for '--policy'" in err and "exact model" in err


def test_capacity_counts_speeds_and_the_mix_sets_the_mean_length() -> None:
    # Given three workers of speeds 1, 1 and 0.2 and 5 ms tasks: 440 tasks/s of capacity
    p = SimulationParams(workers=3, utilisation=0.5, service_mean=0.005, speeds=(1, 1, 0.2))
    assert p.arrival_rate == pytest.approx(220)
    # and a mix of one task in ten 100 ms, the rest 5 ms: a mean of 14.5 ms
    mixed = SimulationParams(workers=3, mix=parse_mix("0.9:0.005,0.1:0.1"))
    assert mixed.task_mean == pytest.approx(0.0145)
    # and speeds repeat over the fleet
    assert [p.replace(workers=7).speed(w) for w in range(7)] == [1, 1, 0.2, 1, 1, 0.2, 1]
    with pytest.raises(ParamError, match=r"^speeds: "):
        SimulationParams(workers=2, speeds=(1, 1, 0.2))
