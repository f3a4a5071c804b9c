"""Settings: defaults, precedence, coercion from strings, and one-line validation errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rfqueue.settings import (
    DEFAULT_REDIS_URL,
    Settings,
    SettingsError,
    default_redis_url,
    parse_max_paused,
)


class TestDefaults:
    def test_values(self) -> None:
        s = Settings()
        assert s.redis_url == DEFAULT_REDIS_URL
        assert (s.namespace, s.queue_prefix, s.policy) == ("rfqueue", "rfqueue.", "pull")
        assert (s.no_worker_up, s.fallback_queue) == ("spread", "")
        assert (s.heartbeat_interval, s.heartbeat_timeout, s.max_pause) == (1.0, 5.0, 3600.0)
        assert (s.chaos_enabled, s.chaos_probability, s.chaos_k) == (False, 0.5, 1)
        assert (s.chaos_min_duration, s.chaos_max_duration) == (10.0, 60.0)
        assert (s.max_paused, s.min_up, s.protected, s.seed, s.dry_run) == (1, 1, (), None, False)

    def test_load_without_anything_is_the_defaults(self) -> None:
        assert Settings.load(None, {}) == Settings()

    def test_queue_for(self) -> None:
        assert Settings().queue_for("w1@h") == "rfqueue.w1@h"
        assert Settings(queue_prefix="x-").queue_for("w1@h") == "x-w1@h"

    def test_redis_client_uses_rfqueue_timeouts(self) -> None:
        # Building a client does not connect
        client = Settings(redis_url="redis://127.0.0.1:1/3", socket_timeout=0.5).redis_client()
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.5
        assert kwargs["socket_connect_timeout"] == 0.5
        assert kwargs["decode_responses"] is True
        assert (kwargs["port"], kwargs["db"]) == (1, 3)


class TestPrecedence:
    def test_conf_then_env_then_overrides(self) -> None:
        conf = {"rfqueue_chaos_k": 2, "rfqueue_namespace": "conf", "rfqueue_min_up": 0}
        env = {"RFQUEUE_CHAOS_K": "3", "RFQUEUE_NAMESPACE": "env"}
        s = Settings.load(conf, env, chaos_k=4)
        # Then the override wins over the environment, which wins over the config
        assert s.chaos_k == 4
        assert s.namespace == "env"
        assert s.min_up == 0

    def test_none_and_empty_values_do_not_override(self) -> None:
        conf = {"rfqueue_chaos_k": 2, "rfqueue_namespace": None}
        s = Settings.load(conf, {"RFQUEUE_CHAOS_K": ""}, chaos_k=None)
        assert s.chaos_k == 2
        assert s.namespace == "rfqueue"

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("RFQUEUE_NAMESPACE", "from-env")
        assert Settings.load().namespace == "from-env"

    def test_unknown_override(self) -> None:
        with pytest.raises(SettingsError, match=r"^rfqueue_bogus: no such setting"):
            Settings.load(None, {}, bogus=1)

    def test_replace_validates_again(self) -> None:
        assert Settings().replace(chaos_k=3).chaos_k == 3
        with pytest.raises(SettingsError, match=r"^rfqueue_chaos_k:"):
            Settings().replace(chaos_k=0)


class TestCoercion:
    @pytest.mark.parametrize("text", ["1", "true", "YES", " on "])
    def test_true(self, text: str) -> None:
        assert Settings.load(None, {"RFQUEUE_DRY_RUN": text}).dry_run is True

    @pytest.mark.parametrize("text", ["0", "false", "No", "off"])
    def test_false(self, text: str) -> None:
        s = Settings.load({"rfqueue_dry_run": True}, {"RFQUEUE_DRY_RUN": text})
        assert s.dry_run is False

    def test_numbers_and_strings(self) -> None:
        env = {
            "RFQUEUE_CHAOS_K": "3",
            "RFQUEUE_CHAOS_PROBABILITY": "0.25",
            "RFQUEUE_EVENTS_MAX": " 10 ",
            "RFQUEUE_SEED": "42",
            "RFQUEUE_NO_WORKER_UP": "fallback",
            "RFQUEUE_FALLBACK_QUEUE": "celery",
        }
        s = Settings.load(None, env)
        assert (s.chaos_k, s.chaos_probability, s.events_max, s.seed) == (3, 0.25, 10, 42)
        assert isinstance(s.chaos_probability, float)
        assert (s.no_worker_up, s.fallback_queue) == ("fallback", "celery")

    def test_tuple_from_a_string_and_from_a_list(self) -> None:
        s = Settings.load(None, {"RFQUEUE_PROTECTED": " a@h, b@h,,c@h ,"})
        assert s.protected == ("a@h", "b@h", "c@h")
        assert Settings.load({"rfqueue_protected": ["x@h", "y@h"]}, {}).protected == (
            "x@h",
            "y@h",
        )

    def test_conf_values_are_coerced_too(self) -> None:
        s = Settings.load({"rfqueue_chaos_k": "2", "rfqueue_max_pause": 100}, {})
        assert s.chaos_k == 2
        assert s.max_pause == 100.0 and isinstance(s.max_pause, float)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [("3", 3), ("0", 0), ("1.0", 1), ("0.25", 0.25), ("25%", 0.25), (" 50 % ", 0.5)],
    )
    def test_max_paused(self, text: str, expected: float) -> None:
        value = Settings.load(None, {"RFQUEUE_MAX_PAUSED": text}).max_paused
        assert value == expected
        # A whole number is a count (int); anything else a fraction (float)
        assert type(value) is type(expected)

    @pytest.mark.parametrize("text", ["abc", "-1", "1.5", "100%", "0%", "", "nan"])
    def test_bad_max_paused(self, text: str) -> None:
        with pytest.raises(SettingsError, match=r"^rfqueue_max_paused:"):
            Settings.load({"rfqueue_max_paused": text}, {})

    @pytest.mark.parametrize(
        ("env", "name"),
        [
            ({"RFQUEUE_DRY_RUN": "maybe"}, "dry_run"),
            ({"RFQUEUE_CHAOS_K": "two"}, "chaos_k"),
            ({"RFQUEUE_CHAOS_K": "1.5"}, "chaos_k"),
            ({"RFQUEUE_MAX_PAUSE": "long"}, "max_pause"),
            ({"RFQUEUE_SEED": "x"}, "seed"),
            ({"RFQUEUE_MAX_PAUSED": "lots"}, "max_paused"),
        ],
    )
    def test_unparsable_env_names_the_variable(self, env: dict[str, str], name: str) -> None:
        with pytest.raises(SettingsError) as info:
            Settings.load(None, env)
        # The message starts with the variable's name, which is the setting's name
        assert str(info.value).startswith(f"RFQUEUE_{name.upper()}:")
        assert str(info.value).lower().startswith(f"rfqueue_{name}:")

    def test_unparsable_conf_names_the_setting(self) -> None:
        with pytest.raises(SettingsError, match=r"^rfqueue_chaos_k: expected int"):
            Settings.load({"rfqueue_chaos_k": "many"}, {})


@given(st.integers(0, 10_000))
def test_max_paused_whole_numbers_are_counts(n: int) -> None:
    for text in (str(n), f"{n}.0", f" {n} "):
        value = parse_max_paused(text)
        assert value == n
        assert type(value) is int


@given(st.floats(0.0001, 0.9999))
def test_max_paused_fractions(f: float) -> None:
    # Given a fraction written as a number and as a percentage
    as_number = Settings.load(None, {"RFQUEUE_MAX_PAUSED": repr(f)}).max_paused
    as_percent = parse_max_paused(f"{f * 100!r}%")
    # Then both are that fraction, as a float
    assert as_number == f
    assert isinstance(as_number, float)
    assert as_percent == pytest.approx(f)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"redis_url": "nope"}, "redis_url"),
    ({"redis_url": "http://example.com/0"}, "redis_url"),
    ({"redis_url": "redis://host:notaport/0"}, "redis_url"),
    ({"namespace": " "}, "namespace"),
    ({"queue_prefix": ""}, "queue_prefix"),
    ({"policy": "bogus"}, "policy"),
    ({"policy": "no.such.module:Policy"}, "policy"),
    ({"no_worker_up": "panic"}, "no_worker_up"),
    ({"no_worker_up": "fallback"}, "fallback_queue"),
    ({"refresh_interval": 0}, "refresh_interval"),
    ({"heartbeat_interval": -1}, "heartbeat_interval"),
    ({"max_pause": 0, "chaos_max_duration": 0}, "max_pause"),
    ({"socket_timeout": 0}, "socket_timeout"),
    ({"heartbeat_timeout": 1.5}, "heartbeat_timeout"),
    ({"heartbeat_interval": 3, "heartbeat_timeout": 5}, "heartbeat_timeout"),
    ({"events_max": 0}, "events_max"),
    ({"chaos_interval": 0}, "chaos_interval"),
    ({"chaos_probability": 1.5}, "chaos_probability"),
    ({"chaos_probability": -0.1}, "chaos_probability"),
    ({"chaos_probability": float("nan")}, "chaos_probability"),
    ({"chaos_k": 0}, "chaos_k"),
    ({"chaos_min_duration": 0}, "chaos_min_duration"),
    ({"chaos_min_duration": -5}, "chaos_min_duration"),
    ({"chaos_min_duration": 30, "chaos_max_duration": 20}, "chaos_max_duration"),
    ({"max_pause": 30}, "chaos_max_duration"),
    ({"max_paused": 1.5}, "max_paused"),
    ({"max_paused": 0.0}, "max_paused"),
    ({"max_paused": -1}, "max_paused"),
    ({"min_up": -1}, "min_up"),
    ({"outlier_consecutive_failures": -1}, "outlier_consecutive_failures"),
    ({"outlier_base_ejection": 0}, "outlier_base_ejection"),
    ({"outlier_interval": -1}, "outlier_interval"),
    ({"outlier_min_requests": 0}, "outlier_min_requests"),
    ({"outlier_failure_rate_gap": 0}, "outlier_failure_rate_gap"),
    ({"outlier_failure_rate_gap": 1.5}, "outlier_failure_rate_gap"),
    ({"outlier_max_ejection_percent": 101}, "outlier_max_ejection_percent"),
    ({"forget_after": 0}, "forget_after"),
    ({"departed_after": 5}, "departed_after"),
]


@pytest.mark.parametrize(("kwargs", "name"), BAD, ids=[f"{n}-{k}" for k, n in BAD])
def test_validation_errors_start_with_the_setting_name(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(**kwargs)
    message = str(info.value)
    assert message.startswith(f"rfqueue_{name}: ")
    assert "\n" not in message


def test_validation_errors_from_load_name_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"^rfqueue_policy: unknown policy 'bogus'"):
        Settings.load(None, {"RFQUEUE_POLICY": "bogus"})
    with pytest.raises(SettingsError, match=r"^rfqueue_chaos_max_duration: must not exceed"):
        Settings.load({"rfqueue_max_pause": 30}, {})


def test_valid_edge_values() -> None:
    s = Settings(
        heartbeat_interval=2,
        heartbeat_timeout=4,
        max_paused=0,
        min_up=0,
        chaos_probability=0,
        chaos_min_duration=5,
        chaos_max_duration=5,
        max_pause=5,
        no_worker_up="fallback",
        fallback_queue="celery",
    )
    assert s.max_paused == 0


def test_lifecycle_settings_from_the_environment() -> None:
    env = {"RFQUEUE_OUTLIER_CONSECUTIVE_FAILURES": "0", "RFQUEUE_FORGET_AFTER": "60"}
    s = Settings.load(None, {**env, "RFQUEUE_DEPARTED_AFTER": ""})
    assert (s.outlier_consecutive_failures, s.forget_after) == (0, 60.0)
    assert s.departed_silence == 10 * s.heartbeat_timeout  # unset: ten heartbeat timeouts
    assert Settings.load(None, {"RFQUEUE_DEPARTED_AFTER": "7.5"}).departed_silence == 7.5
    with pytest.raises(SettingsError, match=r"^RFQUEUE_DEPARTED_AFTER: expected float \| None"):
        Settings.load(None, {"RFQUEUE_DEPARTED_AFTER": "soon"})


class TestRedisUrl:
    @pytest.mark.parametrize(
        ("env", "conf", "expected"),
        [
            ({"CELERY_BROKER_URL": "redis://broker:6379/1"}, {}, "redis://broker:6379/1"),
            ({"CELERY_BROKER_URL": "rediss://broker:6380/0"}, {}, "rediss://broker:6380/0"),
            ({}, {"broker_url": "redis://conf:6379/2"}, "redis://conf:6379/2"),
            ({"CELERY_BROKER_URL": "amqp://guest@rabbit//"}, {}, DEFAULT_REDIS_URL),
            ({}, {"broker_url": "amqp://guest@rabbit//"}, DEFAULT_REDIS_URL),
            ({}, {"broker_url": "memory://"}, DEFAULT_REDIS_URL),
            ({}, {}, DEFAULT_REDIS_URL),
            # Celery's own rule: a set CELERY_BROKER_URL wins, so the broker is not Redis
            (
                {"CELERY_BROKER_URL": "amqp://guest@rabbit//"},
                {"broker_url": "redis://conf:6379/2"},
                DEFAULT_REDIS_URL,
            ),
            (
                {"CELERY_BROKER_URL": "redis://env:6379/0"},
                {"broker_url": "redis://conf:6379/2"},
                "redis://env:6379/0",
            ),
        ],
    )
    def test_defaults_to_a_redis_broker(
        self, env: dict[str, str], conf: dict[str, Any], expected: str
    ) -> None:
        assert default_redis_url(conf, env) == expected
        assert Settings.load(conf, env).redis_url == expected

    def test_explicit_url_wins_over_the_broker(self) -> None:
        env = {"CELERY_BROKER_URL": "redis://broker:6379/1"}
        conf = {"broker_url": "redis://conf:6379/2", "rfqueue_redis_url": "redis://table:1/0"}
        assert Settings.load(conf, env).redis_url == "redis://table:1/0"
        env["RFQUEUE_REDIS_URL"] = "redis://env-table:1/0"
        assert Settings.load(conf, env).redis_url == "redis://env-table:1/0"

    @pytest.mark.parametrize(
        "url",
        ["redis://:s3cret@127.0.0.1:1/0", "redis://user:s3cret@host:6379/0", "rediss://:s3cret@h"],
    )
    def test_safe_url_masks_the_password(self, url: str) -> None:
        safe = Settings(redis_url=url).safe_redis_url
        assert "s3cret" not in safe
        assert "**" in safe

    @pytest.mark.parametrize(
        "url",
        ["redis://:s3cret@host:notaport/0", "redis://u:s3cret@host:99999/0", "http://:s3cret@h/0"],
    )
    def test_bad_url_error_masks_the_password(self, url: str) -> None:
        with pytest.raises(SettingsError) as info:
            Settings(redis_url=url)
        assert str(info.value).startswith("rfqueue_redis_url: ")
        assert "s3cret" not in str(info.value)
