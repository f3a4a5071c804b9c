"""Sentinel URLs: parsing, masking, the settings they need, and the client they give.

Nothing here needs a Redis or a Sentinel: building a client does not connect, and
"no Sentinel answers" is a port where nothing listens.
"""

from __future__ import annotations

from typing import Any

import click
import pytest
import redis
from redis.sentinel import MasterNotFoundError, SentinelConnectionPool

from rfqueue.cli import Context, main
from rfqueue.connection import (
    SENTINEL_PORT,
    SentinelTarget,
    connect,
    is_sentinel_url,
    masked_url,
    parse_sentinel_url,
)
from rfqueue.console import run_command
from rfqueue.demo.fleet import free_port
from rfqueue.settings import Settings, SettingsError
from rfqueue.table.replication import ReplicaAcks, ReplicationError

TWO = "sentinel://:pw%40x@10.0.0.1:26380/2;sentinel://:pw%40x@10.0.0.2"


class TestParse:
    def test_two_sentinels_with_the_first_parts_login_and_database(self) -> None:
        # kombu's style: the password and database of the first part are the master's
        assert parse_sentinel_url(TWO) == SentinelTarget(
            (("10.0.0.1", 26380), ("10.0.0.2", SENTINEL_PORT)), None, "pw@x", 2
        )

    def test_one_sentinel_user_and_no_database(self) -> None:
        target = parse_sentinel_url("sentinel://app:secret@sentinel.example:5000")
        assert target == SentinelTarget((("sentinel.example", 5000),), "app", "secret", 0)
        assert target.addresses() == "sentinel.example:5000"

    @pytest.mark.parametrize(
        "url",
        ["sentinel://h:1", "SENTINEL://h:1", " sentinel://h", TWO],
    )
    def test_sentinel_urls_are_recognised(self, url: str) -> None:
        assert is_sentinel_url(url)

    @pytest.mark.parametrize("url", ["redis://h:1/0", "rediss://h", "unix:///tmp/r.sock"])
    def test_other_urls_are_not(self, url: str) -> None:
        assert not is_sentinel_url(url)

    @pytest.mark.parametrize(
        ("url", "why"),
        [
            ("sentinel://:pw@h:99999/0", "a port must be a number from 1 to 65535 (Sentinel h)"),
            ("sentinel://:pw@h:abc/0", "a port must be a number from 1 to 65535 (Sentinel h)"),
            ("sentinel://:pw@h:0/0", "a port must be a number from 1 to 65535 (Sentinel h)"),
            ("sentinel://:pw@:26379/0", "a sentinel:// part names no host"),
            ("sentinel://h:1;redis://h:2", "every part must be a sentinel:// URL, not redis://"),
            ("sentinel://h:1/0?ssl_cert_reqs=none", "sentinel:// URLs take no query parameters"),
            ("sentinel://h:1/zero", "the database must be a number, got 'zero'"),
        ],
    )
    def test_bad_urls_say_why_without_the_password(self, url: str, why: str) -> None:
        with pytest.raises(ValueError) as raised:
            parse_sentinel_url(url)
        assert str(raised.value) == why
        # And as a setting: one line naming rfqueue_redis_url, the password masked
        with pytest.raises(SettingsError) as bad:
            Settings(redis_url=url, sentinel_master="m")
        message = str(bad.value)
        assert message.startswith("rfqueue_redis_url: cannot use 'sentinel://")
        assert message.endswith(why)
        assert "pw@" not in message and "\n" not in message


class TestMasking:
    def test_every_part_of_a_multi_host_url_is_masked(self) -> None:
        url = "sentinel://:one@h1:1/0;sentinel://:two@h2:2;sentinel://u:three@h3:3"
        masked = masked_url(url)
        assert masked.count("**") == 3
        assert not {"one", "two", "three"} & set(masked.replace("@", " ").replace(":", " ").split())
        assert Settings(redis_url=url, sentinel_master="m").safe_redis_url == masked

    def test_an_unparsable_part_is_masked_too(self) -> None:
        assert "s3cret" not in masked_url("sentinel://:s3cret@h:1;sentinel://:s3cret@h:x")

    def test_plain_urls_are_masked_as_before(self) -> None:
        assert masked_url("redis://:s3cret@h:6379/0") == "redis://:**@h:6379/0"


class TestSettings:
    def test_a_sentinel_url_needs_the_master_name(self) -> None:
        with pytest.raises(SettingsError) as bad:
            Settings(redis_url="sentinel://:pw@h:1/0")
        assert str(bad.value) == "rfqueue_sentinel_master: required with a sentinel:// URL"

    def test_the_master_name_defaults_from_celerys_transport_options(self) -> None:
        # Given a Sentinel broker configured the way Celery users do
        conf = {
            "broker_url": "sentinel://:pw@h1:1;sentinel://:pw@h2:2",
            "broker_transport_options": {"master_name": "mymaster"},
        }
        # Then the table uses the same Sentinels, master and master password
        s = Settings.load(conf, {})
        assert (s.redis_url, s.sentinel_master) == (conf["broker_url"], "mymaster")
        # And an explicit master name wins
        assert Settings.load(conf, {"RFQUEUE_SENTINEL_MASTER": "other"}).sentinel_master == "other"

    def test_the_broker_env_url_counts_too(self) -> None:
        conf = {"broker_transport_options": {"master_name": "mymaster"}}
        env = {"CELERY_BROKER_URL": "sentinel://h:1"}
        assert Settings.load(conf, env).sentinel_master == "mymaster"

    def test_no_default_master_for_a_table_url_of_its_own(self) -> None:
        # The broker's master name belongs to the broker's Sentinels, not to another URL
        conf = {
            "broker_url": "sentinel://h1:1",
            "broker_transport_options": {"master_name": "brokermaster"},
        }
        with pytest.raises(SettingsError, match=r"^rfqueue_sentinel_master: "):
            Settings.load(conf, {"RFQUEUE_REDIS_URL": "sentinel://h9:9"})

    def test_replica_acks_default_to_one_through_sentinel_and_zero_otherwise(self) -> None:
        through_sentinel = Settings(redis_url="sentinel://h:1", sentinel_master="m")
        acks = ReplicaAcks.for_settings
        assert acks(through_sentinel) == ReplicaAcks(1, 0.5)
        assert acks(Settings(redis_url="redis://h:1/0")) == ReplicaAcks(0, 0.5)
        env = {"RFQUEUE_REPLICA_ACKS": "2", "RFQUEUE_REPLICA_TIMEOUT": "0.25"}
        assert acks(Settings.load({}, env, redis_url="redis://h:1/0")) == ReplicaAcks(2, 0.25)
        assert acks(through_sentinel.replace(replica_acks=0)).replicas == 0

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"replica_acks": -1}, "rfqueue_replica_acks: must not be negative, got -1"),
            ({"replica_timeout": 0.0}, "rfqueue_replica_timeout: must be positive, got 0.0"),
            (
                {"replica_timeout": 2.0},
                "rfqueue_replica_timeout: must be shorter than socket_timeout (2 s)",
            ),
        ],
    )
    def test_bad_replication_settings(self, changes: dict[str, Any], message: str) -> None:
        with pytest.raises(SettingsError) as bad:
            Settings(redis_url="sentinel://h:1", sentinel_master="m", **changes)
        assert str(bad.value) == message

    def test_the_timeout_is_not_checked_when_nothing_waits(self) -> None:
        assert Settings(redis_url="redis://h:1/0", socket_timeout=0.5).replica_timeout == 0.5


class TestConnect:
    def test_a_sentinel_url_gives_a_master_client_of_that_name(self) -> None:
        options = {"socket_timeout": 0.7, "decode_responses": True}
        client = connect(TWO, sentinel_master="tablemaster", **options)
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "tablemaster" and pool.is_master
        kwargs = pool.connection_kwargs
        assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"]) == ("pw@x", 2, 0.7)
        assert kwargs["decode_responses"] is True
        # And the Sentinels are asked with the socket options but without the master's password
        sentinels = pool.sentinel_manager.sentinels
        asked = [s.connection_pool.connection_kwargs for s in sentinels]
        assert [(k["host"], k["port"]) for k in asked] == [("10.0.0.1", 26380), ("10.0.0.2", 26379)]
        assert all(k.get("password") is None and k["socket_timeout"] == 0.7 for k in asked)
        # And each is asked once: on an error redis-py goes on to the next one
        assert all(k["retry"].get_retries() == 0 for k in asked)

    def test_sentinel_kwargs_go_to_the_sentinels(self) -> None:
        client = connect("sentinel://h:1", sentinel_master="m", sentinel_kwargs={"password": "sp"})
        sentinel = client.connection_pool.sentinel_manager.sentinels[0]
        assert sentinel.connection_pool.connection_kwargs["password"] == "sp"

    @pytest.mark.parametrize("url", ["redis://:pw@h:7/3", "unix:///tmp/rfqueue-x.sock?db=1"])
    def test_other_urls_give_a_plain_client(self, url: str) -> None:
        client = connect(url, socket_timeout=0.5)
        assert type(client.connection_pool) is redis.ConnectionPool
        assert client.connection_pool.connection_kwargs["socket_timeout"] == 0.5

    def test_a_sentinel_url_without_a_master_name_is_refused(self) -> None:
        with pytest.raises(ValueError, match="needs the name of the master"):
            connect("sentinel://h:1")

    def test_settings_build_their_client_through_sentinel(self) -> None:
        s = Settings(redis_url=TWO, sentinel_master="tablemaster", socket_timeout=1.5)
        pool = s.redis_client().connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.connection_kwargs["socket_connect_timeout"] == 1.5

    def test_no_sentinel_answering_names_each_of_them_and_the_master(self) -> None:
        # Given two Sentinel addresses where nothing listens
        ports = free_port(), free_port()
        url = ";".join(f"sentinel://:s3cret@127.0.0.1:{port}" for port in ports)
        # When the client is used
        with pytest.raises(MasterNotFoundError) as raised:
            connect(url, sentinel_master="tablemaster", socket_timeout=1).ping()
        # Then the error names the master and each Sentinel with its own reason, no password
        message = str(raised.value)
        assert message.startswith("no master 'tablemaster' from Sentinel 127.0.0.1:")
        for port in ports:
            assert f"127.0.0.1:{port} (" in message
        assert "s3cret" not in message and "\n" not in message


class TestCommandLine:
    def test_a_sentinel_url_without_master_is_exit_2_naming_the_setting(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(["--redis-url", "sentinel://:s3cret@127.0.0.1:1/0", "status"])
        err = capsys.readouterr().err
        assert code == 2
        assert err == "rfqueue: error: rfqueue_sentinel_master: required with a sentinel:// URL\n"

    def test_the_master_name_can_be_given_as_an_option(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Given a Sentinel URL where nothing answers, and the master named on the command line
        monkeypatch.delenv("RFQUEUE_SENTINEL_MASTER", raising=False)
        argv = ["--redis-url", "sentinel://:s3cret@127.0.0.1:1/0", "--sentinel-master", "tbl"]
        # When status runs, the settings are accepted and the Sentinel is asked for "tbl"
        code = main([*argv, "status"])
        err = capsys.readouterr().err
        assert code == 1 and len(err.splitlines()) == 1
        assert "'tbl'" in err and "s3cret" not in err

    def test_a_bad_sentinel_port_is_exit_2_naming_the_url(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code = main(["--redis-url", "sentinel://:s3cret@127.0.0.1:70000/0", "status"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.splitlines()) == 1
        assert "rfqueue_redis_url" in err and "'--redis-url'" in err and "s3cret" not in err

    def test_remote_control_over_a_sentinel_broker_names_the_master(self) -> None:
        # Given no broker URL but the table's, which is a Sentinel URL
        settings = Settings(redis_url="sentinel://h:1/0", sentinel_master="tablemaster")
        # Then the CLI's remote-control app tells kombu the master's name, as kombu requires
        app = Context(settings, None).control().app
        assert app.conf.broker_transport_options["master_name"] == "tablemaster"

    def test_too_few_replicas_is_one_line_and_exit_1(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        @click.command()
        def change() -> None:
            raise ReplicationError(0, 1, 0.5)

        assert run_command(change, [], "rfqueue", "the failure table's Redis") == 1
        assert capsys.readouterr().err == (
            "rfqueue: error: the change reached the master but only 0 of 1 replicas "
            "within 0.5 s; a failover could lose it\n"
        )
