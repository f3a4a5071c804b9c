"""docs/deployment.md's Kubernetes example, checked by reading it.

The Deployment must drain in ``preStop``, probe readiness with ``rfqueue check``, give
the grace period room for the drain's timeout, and name each worker as the hooks do;
every ``rfqueue`` command in it must parse with the real command line.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from rfqueue.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
#: what the hooks run: sh -c 'rfqueue ... "worker@$(hostname)" ...'
POD = "worker@pod-7d9f"


@pytest.fixture(scope="module")
def container() -> dict[str, Any]:
    blocks = [yaml.safe_load(b) for b in YAML_BLOCK.findall(DOC.read_text())]
    deployments = [b for b in blocks if isinstance(b, dict) and b.get("kind") == "Deployment"]
    assert len(deployments) == 1, "docs/deployment.md needs one Kubernetes Deployment"
    pod = deployments[0]["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return {"pod": pod, **pod["containers"][0]}


def rfqueue_argv(command: list[str]) -> list[str]:
    """The rfqueue arguments of a hook's ``sh -c`` line, with the pod's host name in."""
    assert command[:2] == ["sh", "-c"], command
    argv = shlex.split(command[2].replace("$(hostname)", POD.split("@")[1]))
    assert argv[0] == "rfqueue", argv
    return argv[1:]


def parsed(argv: list[str]) -> dict[str, Any]:
    """The command's parameters, as the real ``rfqueue`` parses them (nothing runs)."""
    name, *rest = argv
    command = cli.commands[name]
    with command.make_context(name, list(rest)) as ctx:
        return dict(ctx.params)


def test_pre_stop_drains_and_waits(container: dict[str, Any]) -> None:
    argv = rfqueue_argv(container["lifecycle"]["preStop"]["exec"]["command"])
    params = parsed(argv)
    assert argv[0] == "drain" and params["worker"] == POD and params["wait"] is True
    assert params["timeout"], "a drain --wait in preStop needs --timeout (the longest task)"


def test_the_grace_period_outlasts_the_drain(container: dict[str, Any]) -> None:
    argv = rfqueue_argv(container["lifecycle"]["preStop"]["exec"]["command"])
    grace = container["pod"]["terminationGracePeriodSeconds"]
    assert grace >= parsed(argv)["timeout"] + 30, "room for the drain and the exit"


def test_readiness_runs_check_and_liveness_does_not(container: dict[str, Any]) -> None:
    argv = rfqueue_argv(container["readinessProbe"]["exec"]["command"])
    assert argv[0] == "check" and parsed(argv)["worker"] == POD
    assert "livenessProbe" not in container  # a paused or draining worker is alive


def test_the_worker_is_named_as_the_hooks_name_it(container: dict[str, Any]) -> None:
    command = container["command"]
    assert command[:4] == ["celery", "-A", "proj", "worker"]
    assert command[command.index("--hostname") + 1] == "worker@%h"  # %h: the pod's host name
