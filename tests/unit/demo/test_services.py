"""The demo's options and process bookkeeping, without starting anything."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from rfqueue.demo.services import NAMESPACE, DemoOptions, Services, port_is_free
from rfqueue.settings import Settings, SettingsError


def test_the_demo_s_processes_get_its_namespace_and_chaos_settings():
    env = DemoOptions(seed=5, pause_min=1, pause_max=3, max_paused=2).env()
    settings = Settings.load({}, environ=env)
    assert settings.namespace == NAMESPACE
    assert settings.chaos_enabled and settings.seed == 5
    assert (settings.chaos_min_duration, settings.chaos_max_duration) == (1, 3)
    assert settings.max_paused == 2


def test_chaos_settings_rfqueue_refuses_are_caught_before_anything_starts():
    with pytest.raises(SettingsError, match="rfqueue_chaos_max_duration"):
        DemoOptions(pause_min=5, pause_max=2).check()


def test_each_run_gets_its_own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    first = DemoOptions().folder()
    first.mkdir(parents=True)
    second = DemoOptions().folder()
    assert first.parent == second.parent == Path("runs")
    assert second != first
    assert DemoOptions(run_dir=tmp_path / "mine").folder() == tmp_path / "mine"


class _Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid


def test_the_pids_file_lists_this_run_s_processes_only(tmp_path: Path):
    # Given a run folder left by an earlier run
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "pids").write_text("111 worker old\n")

    # When a new run records two processes
    services = Services(DemoOptions(run_dir=folder), folder, console=None)  # type: ignore[arg-type]
    proc: Any = _Process(222)
    services.record(proc, "redis-server")
    services.record(_Process(333), "worker demo1")  # type: ignore[arg-type]

    # Then the file holds those two, not the old one
    assert (folder / "pids").read_text() == "222 redis-server\n333 worker demo1\n"


def test_a_port_in_use_is_not_free():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_is_free(port)
    assert port_is_free(port)
