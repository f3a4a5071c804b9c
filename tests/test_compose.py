"""docker-compose.yml and workers/Dockerfile: the reference deployment, checked by reading them.

Docker need not run: the files are parsed and held to what the README promises (its
commands, JSON only, no plaintext secrets, chaos scheduled by beat).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rfqueue.monitoring.metrics import METRICS_COMMAND, metrics
from rfqueue.settings import Settings
from tests.reference import BEAT_COMMAND, FLOWER_COMMAND, WORKER_COMMAND
from workers import producer
from workers.producer import PRODUCER_COMMAND

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "workers" / "Dockerfile"
COMMANDS = (WORKER_COMMAND, BEAT_COMMAND, FLOWER_COMMAND, PRODUCER_COMMAND, METRICS_COMMAND)
REQUIRED = {"redis", "worker1", "worker2", "worker3", "beat", "flower", "producer", "metrics",
            "prometheus", "grafana"}  # fmt: skip
#: services that run someone else's image, not the reference app
INFRASTRUCTURE = {"redis", "prometheus", "grafana"}
#: ``${VAR:-default}`` (or ``${VAR}``): a value the operator can override
VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-(?P<default>[^}]*))?\}")
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:@/\s]*:(?P<password>\$\{[^}]*\}|[^@/\s]+)@")
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|AUTH", re.IGNORECASE)
#: ``--basic-auth`` value: a user name (or variable), then the password as a variable
_VAR = r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-[^}]*)?\}"
CREDENTIALS = re.compile(rf"(?:{_VAR}|[^:$\s]+):{_VAR}")
SERIALIZATION = re.compile(r"serializer|accept[-_]content", re.IGNORECASE)


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    if isinstance(command, list):
        return [str(part) for part in command]
    return []


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(text: str) -> str:
    """What compose makes of ``text`` when none of the variables is set."""
    return VARIABLE.sub(lambda m: m.group("default") or "", text).replace("$$", "$")


def is_variable(text: str) -> bool:
    return VARIABLE.fullmatch(text) is not None


def scalars(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(key, value)`` in the document; a list item ``NAME=value`` also as its pair."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from scalars(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from scalars(item, key)
    elif node is not None:
        value = str(node)
        yield key, value
        name, sep, rest = value.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_]\w*", name):
            yield name, rest


def command_lines(node: Any) -> Iterator[list[str]]:
    """Every string as its words, and every list of plain values as one argv."""
    if isinstance(node, dict):
        for value in node.values():
            yield from command_lines(value)
    elif isinstance(node, list) and not any(isinstance(i, (dict, list)) for i in node):
        yield [str(item) for item in node]
    elif isinstance(node, list):
        for item in node:
            yield from command_lines(item)
    elif isinstance(node, str):
        try:
            yield shlex.split(node)
        except ValueError:
            yield node.split()


def options(words: list[str]) -> Iterator[tuple[str, str]]:
    """``(--flag, argument)`` pairs of a command line, for ``--flag=arg`` and ``--flag arg``."""
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word.startswith("--"):
            flag, sep, arg = word.partition("=")
            yield flag, arg if sep else following


def plaintext_secrets(document: Any) -> list[str]:
    """Secrets written into the file instead of coming from a ``${VAR:-default}``."""
    found = []
    for key, value in scalars(document):
        for match in URL_PASSWORD.finditer(value):
            if not is_variable(match["password"]):
                found.append(f"{key}: password in URL {value!r}")
        if SECRET_NAME.search(key) and value and not is_variable(value):
            found.append(f"{key}={value!r}")
    for words in command_lines(document):
        for flag, arg in options(words):
            if flag == "--requirepass" and not is_variable(arg):
                found.append(f"--requirepass {arg!r}")
            if flag == "--basic-auth" and not CREDENTIALS.fullmatch(arg):
                found.append(f"--basic-auth {arg!r}")
    return found


def unsafe_serialization(document: Any, text: str) -> list[str]:
    """Any mention of pickle, and any serializer or accepted content other than JSON."""
    lines = enumerate(text.splitlines(), 1)
    found = [f"line {n}: {line.strip()}" for n, line in lines if "pickle" in line.lower()]
    flags = [pair for words in command_lines(document) for pair in options(words)]
    for key, value in [*scalars(document), *flags]:
        if SERIALIZATION.search(key):
            chosen = {v.strip(" \"'[]").lower() for v in value.split(",")} - {""}
            if chosen != {"json"}:
                found.append(f"{key}={value!r}")
    return found


def services_running(services: dict[str, dict[str, Any]], prefix: tuple[str, ...]) -> list[str]:
    return [name for name, s in services.items() if tuple(argv(s)[: len(prefix)]) == prefix]


# -- docker-compose.yml ----------------------------------------------------------------


def test_every_service_of_the_reference_deployment_is_there(services: dict[str, Any]) -> None:
    missing = REQUIRED - set(services)
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


def test_redis_keeps_an_aof_and_wants_a_password(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:7")
    words = argv(redis)
    assert words[0] == "redis-server"
    assert words[words.index("--appendonly") + 1] == "yes"
    password = words[words.index("--requirepass") + 1]
    assert is_variable(password) and VARIABLE.fullmatch(password)["default"]  # type: ignore[index]
    assert redis.get("healthcheck", {}).get("test"), "redis needs a healthcheck"


def test_three_workers_with_distinct_node_names(services: dict[str, Any]) -> None:
    workers = services_running(services, WORKER_COMMAND)
    assert len([w for w in workers if not services[w].get("profiles")]) >= 3, workers
    hostnames = []
    for name in workers:
        rest = argv(services[name])[len(WORKER_COMMAND) :]
        assert re.fullmatch(r"[\w.-]+@%h", rest[0]), f"{name}: bad --hostname {rest[0]!r}"
        pool = rest[4:] if rest[3:4] == ["-Q"] else []  # a worker of another pool: -Q QUEUE
        extra = rest[1:3] if pool else rest[1:]
        assert extra in ([], ["--loglevel", "INFO"]), f"{name}: extra arguments {rest[1:]}"
        hostnames.append(rest[0])
    assert len(set(hostnames)) == len(hostnames), f"node names repeat: {hostnames}"


def test_a_second_pool_behind_a_profile(services: dict[str, Any]) -> None:
    # `docker compose --profile pools up` adds two workers of the video pool, the queue the
    # reference app routes workers.media.transcode to; the default fleet stays as it was
    from workers.app import app

    video = [w for w in services_running(services, WORKER_COMMAND) if services[w].get("profiles")]
    assert len(video) == 2, video
    for name in video:
        assert services[name]["profiles"] == ["pools"]
        assert argv(services[name])[-2:] == ["-Q", "video"]
        assert services[name].get("hostname") == name
    assert {"workers.media.transcode": {"queue": "video"}} in app.conf.task_routes
    # a per-pool setting naming `video` would stop every tick of the fleet without the profile
    for service in services.values():
        assert not {"RFQUEUE_POOL_MAX_PAUSED", "RFQUEUE_POOL_MIN_UP"} & set(environment(service))


def test_workers_get_time_for_a_warm_shutdown(services: dict[str, Any]) -> None:
    for name in services_running(services, WORKER_COMMAND):
        grace = str(services[name].get("stop_grace_period", "10s"))
        match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", grace)
        assert match and grace, f"{name}: unreadable stop_grace_period {grace!r}"
        seconds = int(match[1] or 0) * 60 + int(match[2] or 0)
        assert seconds >= 30, f"{name}: stop_grace_period {grace} is too short to finish tasks"


def test_every_app_service_runs_a_readme_command(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in INFRASTRUCTURE:
            continue
        words = argv(service)
        assert any(tuple(words[: len(c)]) == c for c in COMMANDS), f"{name}: {words}"
    assert services_running(services, BEAT_COMMAND) == ["beat"]
    assert services_running(services, FLOWER_COMMAND) == ["flower"]
    assert services_running(services, PRODUCER_COMMAND) == ["producer"]
    assert services_running(services, METRICS_COMMAND) == ["metrics"]


def test_the_producer_command_line_is_valid(services: dict[str, Any]) -> None:
    args = argv(services["producer"])[len(PRODUCER_COMMAND) :]
    ctx = producer.cli.make_context("workers.producer", args)
    assert ctx.params["rate"] > 0 and ctx.params["duration"] > 0


def test_the_metrics_service_listens_in_its_container_and_is_published_on_loopback(
    services: dict[str, Any],
) -> None:
    service = services["metrics"]
    ctx = metrics.make_context("metrics", argv(service)[len(METRICS_COMMAND) :])
    port = ctx.params["port"]
    # 127.0.0.1 inside the container would be unreachable from the published port.
    assert ctx.params["host"] == "0.0.0.0"
    assert f"127.0.0.1:{port}:{port}" in [str(p) for p in service.get("ports", [])]
    assert service.get("healthcheck", {}).get("test"), "metrics needs a healthcheck"


def test_flower_sits_behind_basic_auth(services: dict[str, Any]) -> None:
    flower = services["flower"]
    words = argv(flower)
    auth = [w for w in words if w.startswith("--basic-auth")]
    assert auth, "flower must run with --basic-auth"
    credentials = auth[0].partition("=")[2] or words[words.index(auth[0]) + 1]
    user, _, password = interpolate(credentials).partition(":")
    assert user and password, f"--basic-auth needs user:password, got {credentials!r}"
    assert "FLOWER_UNAUTHENTICATED_API" not in environment(flower)
    assert any("5555" in str(port) for port in flower.get("ports", []))


def test_json_only_and_no_pickle(compose: dict[str, Any]) -> None:
    assert unsafe_serialization(compose, COMPOSE.read_text()) == []


def test_no_plaintext_passwords(compose: dict[str, Any]) -> None:
    assert plaintext_secrets(compose) == []


def test_app_services_share_broker_and_table_and_wait_for_redis(services: dict[str, Any]) -> None:
    brokers = set()
    for name, service in services.items():
        if name in INFRASTRUCTURE:
            continue
        env = environment(service)
        assert env.get("CELERY_BROKER_URL"), f"{name}: no CELERY_BROKER_URL"
        assert env.get("RFQUEUE_REDIS_URL") == env["CELERY_BROKER_URL"], name
        assert interpolate(env["CELERY_BROKER_URL"]).startswith("redis://:"), name
        assert "@redis:6379/" in env["CELERY_BROKER_URL"], name
        brokers.add(env["CELERY_BROKER_URL"])
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must say the condition"
        assert depends.get("redis", {}).get("condition") == "service_healthy", name
        build = service.get("build") or {}
        assert build.get("context") == "." and build.get("dockerfile") == "workers/Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()
    assert len(brokers) == 1, f"services disagree on the broker: {brokers}"


def test_every_app_service_has_valid_rfqueue_settings(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in INFRASTRUCTURE:
            continue
        env = {k: interpolate(v) for k, v in environment(service).items()}
        Settings.load({}, environ=env)  # raises SettingsError naming a bad setting


def test_beat_enables_chaos_and_workers_agree(services: dict[str, Any]) -> None:
    def settings(name: str) -> Settings:
        env = {k: interpolate(v) for k, v in environment(services[name]).items()}
        return Settings.load({}, environ=env)

    beat = settings("beat")
    assert "RFQUEUE_CHAOS_ENABLED" in environment(services["beat"])
    assert beat.chaos_enabled
    assert beat.chaos_interval == 30 and beat.chaos_probability == 0.5
    assert beat.max_paused == 1
    assert (beat.chaos_min_duration, beat.chaos_max_duration) == (10, 60)
    # beat schedules the tick, but a worker runs it with its own settings: they must agree.
    for name in services_running(services, WORKER_COMMAND):
        worker = settings(name).replace(chaos_enabled=True)
        assert worker == beat, f"{name}'s chaos settings differ from beat's"


# -- Prometheus and Grafana -----------------------------------------------------------------


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """``{container path: host path}`` of a service's bind mounts (``./host:/container:ro``)."""
    found = {}
    for volume in service.get("volumes", []):
        host, container = str(volume).split(":")[:2]
        if host.startswith("."):
            found[container] = ROOT / host
    return found


def published_on_loopback(service: dict[str, Any], port: int) -> bool:
    return f"127.0.0.1:{port}:{port}" in [str(p) for p in service.get("ports", [])]


def test_prometheus_mounts_its_config_and_the_rules_and_scrapes_the_exporter(
    services: dict[str, Any],
) -> None:
    prometheus = services["prometheus"]
    words = argv(prometheus)
    config_path = next(w.split("=", 1)[1] for w in words if w.startswith("--config.file="))
    folder, _, name = config_path.rpartition("/")
    host = mounts(prometheus)[folder]
    config = yaml.safe_load((host / name).read_text())
    # rule_files are relative to the config's folder, mounted whole
    rules = [host / f for f in config["rule_files"]]
    assert [r.name for r in rules] == ["rules.yml"] and all(r.is_file() for r in rules)
    assert yaml.safe_load(rules[0].read_text())["groups"][0]["rules"]
    # the job the rules name, scraping the metrics service on the port it listens on
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "rfqueue"]
    port = metrics.make_context("metrics", argv(services["metrics"])[2:]).params["port"]
    assert job["static_configs"][0]["targets"] == [f"metrics:{port}"]
    assert published_on_loopback(prometheus, 9090)


def test_grafana_provisions_the_prometheus_source_and_the_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    paths = mounts(grafana)
    provisioning = paths["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards/rfqueue.yml").read_text())["providers"]
    dashboards = paths[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "rfqueue.json").read_text())
    # every panel and annotation queries the provisioned source, by its uid
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    uids |= {a["datasource"]["uid"] for a in dashboard["annotations"]["list"] if "expr" in a}
    assert uids == {source["uid"]}
    # the admin password comes from the environment
    env = environment(grafana)
    assert is_variable(env["GF_SECURITY_ADMIN_PASSWORD"])
    assert "GRAFANA_ADMIN_PASSWORD" in env["GF_SECURITY_ADMIN_PASSWORD"]
    assert published_on_loopback(grafana, 3000)


# -- the checkers above can fail ---------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"environment": {"CELERY_BROKER_URL": "redis://:hunter2@redis:6379/0"}},
        {"environment": ["REDIS_PASSWORD=hunter2"]},
        {"command": "redis-server --appendonly yes --requirepass hunter2"},
        {"command": "celery -A workers.app flower --basic-auth=admin:hunter2"},
        {"command": ["celery", "-A", "workers.app", "flower", "--basic-auth", "${U:-a}:pw"]},
    ],
)
def test_plaintext_secrets_are_caught(document: dict[str, Any]) -> None:
    assert plaintext_secrets(document)
    assert not plaintext_secrets({"command": "flower --basic-auth=${U:-admin}:${P:-x}"})


@pytest.mark.parametrize(
    "document",
    [
        {"environment": {"CELERY_TASK_SERIALIZER": "yaml"}},
        {"environment": ["CELERY_ACCEPT_CONTENT=json,msgpack"]},
        {"command": "celery -A workers.app worker --hostname w@%h --serializer=msgpack"},
    ],
)
def test_unsafe_serialization_is_caught(document: dict[str, Any]) -> None:
    assert unsafe_serialization(document, "")
    assert unsafe_serialization({}, "x-env: {CELERY_TASK_SERIALIZER: Pickle}")
    assert not unsafe_serialization({"environment": {"CELERY_TASK_SERIALIZER": "json"}}, "")


# -- workers/Dockerfile ----------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_builds_on_python_and_installs_the_project() -> None:
    steps = instructions(DOCKERFILE.read_text())
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms and froms[-1].split()[0].startswith("python:3.11"), froms
    runs = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert re.search(r"pip install [\"']?\.\[flower,metrics\]", runs), runs


def test_dockerfile_does_not_run_as_root() -> None:
    users = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "USER"]
    assert users, "no USER line: the container would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_puts_the_reference_app_within_reach() -> None:
    # The wheel holds rfqueue only: `celery -A workers.app` imports workers/ from its copy.
    steps = instructions(DOCKERFILE.read_text())
    copies = [args.split() for keyword, args in steps if keyword == "COPY"]
    workdir = next(args for keyword, args in steps if keyword == "WORKDIR")
    assert ["workers", "./workers"] in copies, copies
    paths = [args for keyword, args in steps if keyword == "ENV" and "PYTHONPATH=" in args]
    assert paths and workdir in paths[-1].split("PYTHONPATH=")[1].split(":"), paths


def test_dockerfile_runs_the_worker_command_by_default() -> None:
    cmds = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "CMD"]
    assert cmds, "no CMD"
    cmd = json.loads(cmds[-1]) if cmds[-1].startswith("[") else shlex.split(cmds[-1])
    assert tuple(cmd[: len(WORKER_COMMAND)]) == WORKER_COMMAND, cmd
    assert re.fullmatch(r"[\w.-]+@%h", cmd[len(WORKER_COMMAND)]), cmd
