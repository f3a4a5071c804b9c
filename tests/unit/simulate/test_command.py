"""``rfqueue simulate``: a table and a figure; every bad parameter one line, exit 2, no figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rfqueue.cli import main
from rfqueue.simulate.params import ParamError, SimulationParams

SMALL = ["simulate", "--workers", "20", "--tasks", "3000", "--pause-rate", "0.02", "--seed", "3"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_small_run_prints_the_table_and_writes_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sim.png"
    # When a small run compares every policy, in two processes, and draws them
    code = main([*SMALL, "--jobs", "2", "--png", str(png)])
    out, err = capsys.readouterr()
    # Then it prints a row per policy, the wall time, and writes a PNG
    assert code == 0, err
    for name in ("random", "round_robin", "weighted", "least_loaded", "p2c", "hash"):
        assert f"│ {name} " in out
    assert "20 workers, 3,000 tasks" in out and "wall time" in out and "in 2 processes" in out
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert f"figure written to {png}" in out


def test_the_same_seed_gives_the_same_table_in_one_process_or_two(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the same parameters, run in one process and then in two
    tables = []
    for jobs in ("1", "2"):
        assert main([*SMALL, "--policy", "random", "--policy", "p2c", "--jobs", jobs]) == 0
        out = capsys.readouterr().out
        # (the last column is each loop's wall time, which differs)
        tables.append([line.rsplit("│", 2)[0] for line in out.splitlines() if line.startswith("│")])
    # Then the figures are the same
    assert tables[0] == tables[1] and len(tables[0]) == 2


BAD = [
    (["--workers", "0"], "'--workers'"),
    (["--workers", "many"], "'--workers'"),
    (["--tasks", "-5"], "'--tasks'"),
    (["--utilisation", "1"], "'--utilisation'"),
    (["--utilisation", "0"], "'--utilisation'"),
    (["--service", "uniform"], "'--service'"),
    (["--service-mean", "0"], "'--service-mean'"),
    (["--lognormal-sigma", "-1"], "'--lognormal-sigma'"),
    (["--pause-rate", "-0.1"], "'--pause-rate'"),
    (["--pause-rate", "nan"], "'--pause-rate'"),
    (["--pause-duration", "-1"], "'--pause-duration'"),
    (["--pause-duration", "inf"], "'--pause-duration'"),
    (["--policy", "fastest"], "'--policy'"),
    (["--policy", "p2c", "--policy", "p2c"], "'--policy'"),
    (["--seed", "-1"], "'--seed'"),
    (["--jobs", "0"], "'--jobs'"),
    (["--pause-rate", "100000", "--pause-duration", "0.00001"], "'--pause-rate'"),
    (["--png", "/no/such/dir/sim.png"], "'--png'"),
    (["--png", "sim.jpg"], "'--png'"),
]


@pytest.mark.parametrize(("args", "option"), BAD)
def test_a_bad_parameter_is_one_line_exit_2_and_no_figure(
    args: list[str], option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sim.png"
    extra = [] if "--png" in args else ["--png", str(png)]
    # When simulate is given a bad parameter (and a figure to draw)
    code = main(["simulate", "--workers", "5", "--tasks", "100", *extra, *args])
    out, err = capsys.readouterr()
    # Then it exits 2 with one line naming the option, prints no table, draws nothing
    assert code == 2
    assert err.count("\n") == 1 and f"Invalid value for {option}" in err, err
    assert "Traceback" not in err and out == ""
    assert not png.exists()


def test_without_numpy_it_says_what_to_install_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a Python without numpy
    monkeypatch.setitem(sys.modules, "numpy", None)
    # When simulate runs
    code = main(["simulate", "--workers", "5", "--tasks", "100"])
    err = capsys.readouterr().err
    # Then one line says what to install
    assert code == 1
    assert err == "rfqueue: error: rfqueue simulate needs numpy: pip install 'rfqueue[simulate]'\n"


def test_params_name_the_parameter_for_library_callers() -> None:
    with pytest.raises(ParamError, match=r"^workers: must be from 1 to") as caught:
        SimulationParams(workers=0)
    assert caught.value.name == "workers"
    with pytest.raises(ParamError, match=r"^policies: unknown policy 'x'"):
        SimulationParams(policies=("x",))
    assert SimulationParams(workers=10, utilisation=0.5, service_mean=2).arrival_rate == 2.5
