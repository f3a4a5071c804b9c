"""The wheel ships rfqueue alone, and the demo runs from it in an empty directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel .``, as a user builds it (in an isolated build environment)."""
    out = tmp_path_factory.mktemp("dist")
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("rfqueue-*.whl")
    return built


def test_the_wheel_holds_rfqueue_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"rfqueue"}, sorted(tops)
    assert not any(name.startswith("workers/") for name in names)
    # Everything the package reads at run time is in it
    assert "rfqueue/py.typed" in names
    assert "rfqueue/table/lua/pause.lua" in names and "rfqueue/table/lua/prelude.lua" in names
    assert "rfqueue/brokers/lua/move_stranded.lua" in names
    assert "rfqueue/demo/app.py" in names


def test_the_demo_runs_from_the_installed_wheel_in_an_empty_directory(
    wheel: Path, tmp_path: Path
) -> None:
    # Given the wheel installed on its own (its dependencies are this venv's), and an
    # empty working directory: no repository, no workers/ package within reach
    require_binary("redis-server")
    site = tmp_path / "site"
    argv = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    done = subprocess.run([*argv, str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_BROKER_URL", "RFQUEUE_REDIS_URL", "PYTHONPATH")
        and not k.startswith("RFQUEUE_")
    }
    env["PYTHONPATH"] = str(site)
    where = subprocess.run(
        [sys.executable, "-c", "import rfqueue, importlib.util as u; "
         "print(rfqueue.__file__, u.find_spec('workers') is None)"],
        capture_output=True, text=True, env=env, cwd=empty, timeout=60,
    )  # fmt: skip
    assert where.stdout.split() == [str(site / "rfqueue" / "__init__.py"), "True"], where

    # When `rfqueue demo` runs there, short and without Flower
    run_dir = tmp_path / "run"
    options = ["--workers", "2", "--rate", "20", "--duration", "3", "--no-flower", "--run-dir"]
    demo = [sys.executable, str(site / "bin" / "rfqueue"), "demo", *options, str(run_dir)]
    out = subprocess.run(demo, capture_output=True, text=True, env=env, cwd=empty, timeout=240)

    # Then it reconciles every task, and nothing was written to the working directory
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["submitted"] >= 40 and report["lost"] == 0, report["submitted"]
    assert sorted(report["workers"]) and len(report["workers"]) == 2
    assert list(empty.iterdir()) == []
