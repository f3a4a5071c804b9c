"""Celery's own integration suite, with and without rfqueue on its apps: ``make celery-suite``.

Fetches ``t/integration`` from the sdist of the *installed* Celery (``pip download
celery==<version> --no-binary :all: --no-deps``), makes a venv for it in
``.celery-suite/`` (rfqueue from this checkout, that Celery, the suite's pytest
plugins), starts a private redis-server on a free loopback port, and runs the suite's
tasks, canvas, inspect, group chains, beat and Redis backend tests twice under the
suite's own configuration: plain, then with ``rfqueue.install`` on every app its
fixtures make (``rfqueue_on_apps.py``). Prints each run's counts and every test whose
outcome differs. Not part of ``make test``: a run takes minutes.

    python scripts/celery_suite/run.py [--only plain|rfqueue] [-- PYTEST ARGS]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import venv
import xml.etree.ElementTree as ET
from collections import Counter
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".celery-suite"
HERE = Path(__file__).resolve().parent
#: the parts of t/integration the suite runs here (issue 15)
FILES = (
    "test_tasks.py",
    "test_canvas.py",
    "test_inspect.py",
    "test_group_chains.py",
    "test_beat.py",
    "test_redis_backend.py",
)
#: what t/integration needs besides pytest and Celery (the sdist's requirements/test.txt)
NEEDS = ("pytest-timeout", "pytest-rerunfailures", "pytest-subtests", "pydantic")


def fetch_suite(celery_version: str) -> Path:
    """The extracted sdist of ``celery_version`` (downloaded once)."""
    tree = WORK / f"celery-{celery_version}"
    if (tree / "t" / "integration" / "conftest.py").exists():
        return tree
    WORK.mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", f"celery=={celery_version}"]
    subprocess.run([*pip, "--no-binary", ":all:", "--no-deps", "-d", str(WORK)], check=True)
    with tarfile.open(WORK / f"celery-{celery_version}.tar.gz") as sdist:
        sdist.extractall(WORK, filter="data")
    return tree


def suite_python(celery_version: str) -> Path:
    """A venv with rfqueue (this checkout), the same Celery and the suite's plugins."""
    python = WORK / "venv" / "bin" / "python"
    stamp = WORK / "venv" / f".installed-{celery_version}-{'-'.join(NEEDS)}"
    if not stamp.exists():
        venv.create(WORK / "venv", with_pip=True)
        packages = ["-e", str(ROOT), f"celery[redis]=={celery_version}", "pytest", *NEEDS]
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        stamp.touch()
    return python


def run_suite(python: Path, tree: Path, mode: str, port: int, extra: list[str]) -> Path:
    """One run; its junit XML. ``mode`` is ``plain`` or ``rfqueue``."""
    url = f"redis://127.0.0.1:{port}/0"
    env = {
        **os.environ,
        "TEST_BROKER": url,
        "TEST_BACKEND": url,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(port),
        "PYTHONPATH": str(HERE),
    }
    env.pop("RFQUEUE_REDIS_URL", None)
    report = WORK / f"{mode}.xml"
    plugins = ["-p", "celery.contrib.pytest"]
    if mode == "rfqueue":
        plugins += ["-p", "rfqueue_on_apps"]
    tests = [f"t/integration/{name}" for name in FILES]
    command = [str(python), "-m", "pytest", *plugins, *tests, "-q", "-rfE"]
    command += ["-p", "no:cacheprovider", f"--junitxml={report}", *extra]
    print(f"\n== {mode}: {' '.join(command[2:])}", flush=True)
    with open(WORK / f"{mode}.log", "w") as log:
        subprocess.run(command, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT)
    print((WORK / f"{mode}.log").read_text().strip().splitlines()[-1])
    return report


#: the suite's own check (t/integration/conftest.py) after every test that its apps'
#: task_queues hold only `celery`: a worker with rfqueue adds its own two queues there
QUEUES_CHECK = "must only use the shared celery queue"
#: outcomes, the one that wins when a test has several first
WORST_FIRST = ("failed", "error", "skipped", "passed")


def outcomes(report: Path) -> tuple[dict[str, str], set[str]]:
    """``{test id: passed|failed|error|skipped}`` from a junit XML report, and the tests
    whose only error was the suite's queue check at teardown (their outcome is the rest)."""
    result, checked = {}, set()
    for case in ET.parse(report).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = set()
        for child in case:
            text = f"{child.get('message', '')} {child.text or ''}"
            if child.tag == "error" and QUEUES_CHECK in text:
                checked.add(test)
            else:
                kinds.add(child.tag)
        outcome = next((k for k in ("failure", "error", "skipped") if k in kinds), "passed")
        outcome = {"failure": "failed"}.get(outcome, outcome)
        # A call that failed and a teardown that errored are two testcase elements
        result[test] = min(outcome, result.get(test, "passed"), key=WORST_FIRST.index)
    return result, checked


def compare(runs: dict[str, tuple[dict[str, str], set[str]]]) -> None:
    for mode, (results, checked) in runs.items():
        counts = Counter(results.values())
        line = f"{mode:8} " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        if checked:
            line += f"; {len(checked)} errored at teardown on the queue check"
        print(line)
    if len(runs) == 2:
        plain, with_rfqueue = runs["plain"][0], runs["rfqueue"][0]
        differ = sorted(t for t in plain if with_rfqueue.get(t) != plain[t])
        print(f"{len(differ)} tests differ (plain -> rfqueue), the queue check aside:")
        for test in differ:
            print(f"  {test}: {plain[test]} -> {with_rfqueue.get(test, 'not run')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("plain", "rfqueue"))
    parser.add_argument("--compare", action="store_true", help="only compare the last reports")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    celery_version = version("celery")
    tree = fetch_suite(celery_version)
    python = suite_python(celery_version)
    sys.path.insert(0, str(ROOT))
    from rfqueue.demo.fleet import RedisServer

    runs = {}
    if args.compare:
        runs = {mode: outcomes(WORK / f"{mode}.xml") for mode in ("plain", "rfqueue")}
        compare(runs)
        return 0
    for mode in [args.only] if args.only else ["plain", "rfqueue"]:
        server = RedisServer().start()  # a fresh one per run: nothing left from the other
        try:
            runs[mode] = outcomes(run_suite(python, tree, mode, server.port, args.pytest_args))
        finally:
            server.stop()
    print(f"\nCelery {celery_version}, t/integration: {', '.join(FILES)}")
    compare(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
