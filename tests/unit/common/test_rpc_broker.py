"""The broker settings from transport_url and [oslo_messaging_rabbit]
(services/common/broker.py): every host, TLS, heartbeats, quorum queues, and a warning for
each option Tessera reads but does not act on."""

from __future__ import annotations

import ssl

import pytest

from services.common.broker import (
    BrokerHost,
    BrokerSettings,
    kombu_uri,
    parse_transport_url,
    ssl_options,
    unhonoured_options,
)
from services.common.config import load_config, nameko_config

pytestmark = pytest.mark.usefixtures("no_os_environment")


def config(transport_url="rabbit://u:p@mq:5672/", **rabbit):
    conf = load_config([])
    conf.set_override("transport_url", transport_url)
    for name, value in rabbit.items():
        conf.set_override(name, value, group="oslo_messaging_rabbit")
    return conf


def test_every_host_with_its_own_or_the_first_hosts_credentials():
    hosts, query = parse_transport_url("rabbit://a:1@mq1:5672,mq2,b:2@mq3:5673/vh")
    assert hosts == [
        BrokerHost("mq1:5672", "a", "1", "vh"),
        BrokerHost("mq2:5672", "a", "1", "vh"),
        BrokerHost("mq3:5673", "b", "2", "vh"),
    ]
    assert query == {}


def test_quoted_credentials_default_vhost_and_ipv6():
    hosts, _ = parse_transport_url("rabbit://us%40er:p%2Fw@[::1]:5671/")
    assert hosts == [BrokerHost("[::1]:5671", "us@er", "p/w", "/")]
    hosts, _ = parse_transport_url("rabbit://mq")
    assert hosts == [BrokerHost("mq:5672", "guest", "guest", "/")]
    hosts, _ = parse_transport_url("amqp://u:p@mq:5672/%2Fsome%2Fvhost")
    assert hosts[0].virtual_host == "/some/vhost"


def test_kombu_failover_lists_parse_too():
    hosts, _ = parse_transport_url("amqp://u:p@a:1/v;amqp://u:p@b:2/v")
    assert [h.host for h in hosts] == ["a:1", "b:2"]


def test_other_schemes_are_refused():
    with pytest.raises(ValueError, match="rabbit://"):
        parse_transport_url("kafka://mq:9092/")


def test_query_is_parsed_and_kept_out_of_kombus_uri():
    hosts, query = parse_transport_url("rabbit://u:p@a:5671,u:p@b:5671/vh?ssl=1")
    assert query == {"ssl": "1"}
    assert [h.host for h in hosts] == ["a:5671", "b:5671"]
    # kombu would let ?ssl=1 override the ssl options (and their certificate files)
    assert kombu_uri("rabbit://u:p@a:5671,u:p@b:5671/vh?ssl=1") == (
        "amqp://u:p@a:5671/vh;amqp://u:p@b:5671/vh"
    )


def test_ssl_from_the_url_or_the_option():
    assert ssl_options(config()) is False
    assert ssl_options(config("rabbit://u:p@mq:5671/?ssl=1")) is True
    assert ssl_options(config("rabbit://u:p@mq:5671/?ssl=true")) is True
    assert ssl_options(config("rabbit://u:p@mq:5671/?ssl=0")) is False
    assert ssl_options(config(ssl=True)) is True


def test_ssl_files_and_version_as_oslo_messaging_builds_them():
    options = ssl_options(
        config(
            ssl=True,
            ssl_ca_file="/etc/ca.pem",
            ssl_cert_file="/etc/cert.pem",
            ssl_key_file="/etc/key.pem",
            ssl_version="TLSv1_2",
        )
    )
    assert options == {
        "ca_certs": "/etc/ca.pem",
        "cert_reqs": ssl.CERT_REQUIRED,
        "certfile": "/etc/cert.pem",
        "keyfile": "/etc/key.pem",
        "tls_minimum_version": ssl.TLSVersion.TLSv1_2,
        "tls_maximum_version": ssl.TLSVersion.TLSv1_2,
    }
    assert ssl_options(config(ssl=True, ssl_version="SSLv23")) is True
    with pytest.raises(ValueError, match="ssl_version"):
        ssl_options(config(ssl=True, ssl_version="SSLv2"))


def test_ssl_files_without_ssl_enabled_change_nothing():
    assert ssl_options(config(ssl_ca_file="/etc/ca.pem")) is False


def test_nameko_gets_every_host_tls_and_heartbeat():
    conf = config(
        "rabbit://u:p@a:5671,b:5671/vh?ssl=1",
        ssl_ca_file="/etc/ca.pem",
        heartbeat_timeout_threshold=20,
        rabbit_quorum_queue=True,
    )
    nameko = nameko_config(conf)
    assert nameko["AMQP_URI"] == "amqp://u:p@a:5671/vh;amqp://u:p@b:5671/vh"
    assert nameko["AMQP_SSL"] == {"ca_certs": "/etc/ca.pem", "cert_reqs": ssl.CERT_REQUIRED}
    assert nameko["HEARTBEAT"] == 20
    assert nameko["TESSERA_BROKER"].quorum_queues is True


def test_defaults_are_oslo_messagings():
    settings = BrokerSettings.from_config(config())
    assert settings.heartbeat == 60
    assert settings.ssl is False
    assert settings.quorum_queues is False
    assert nameko_config(config())["AMQP_SSL"] is None


def test_options_read_but_not_honoured_are_named():
    assert unhonoured_options(config()) == []
    warnings = unhonoured_options(
        config("rabbit://u:p@mq/?ssl=1&heartbeat=5", rabbit_ha_queues="true")
    )
    assert any("rabbit_ha_queues" in w for w in warnings)
    assert any("heartbeat=" in w for w in warnings)
    assert len(warnings) == 2


def test_options_come_from_a_glance_config_file(tmp_path):
    path = tmp_path / "glance-api.conf"
    path.write_text(
        "[DEFAULT]\ntransport_url = rabbit://u:p@a:5672,u:p@b:5672/\n"
        "[oslo_messaging_rabbit]\nrabbit_use_ssl = true\nssl_ca_file = /ca.pem\n"
        "heartbeat_timeout_threshold = 30\nrabbit_quorum_queue = true\n"
    )
    settings = BrokerSettings.from_config(load_config(["--config-file", str(path)]))
    assert [h.host for h in settings.hosts] == ["a:5672", "b:5672"]
    assert settings.ssl == {"ca_certs": "/ca.pem", "cert_reqs": ssl.CERT_REQUIRED}
    assert (settings.heartbeat, settings.quorum_queues) == (30, True)
