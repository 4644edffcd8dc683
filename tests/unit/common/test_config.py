"""Configuration loading and derived settings (services/common/config.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from services.common.config import (
    amqp_uri,
    database_url,
    filesystem_store_datadir,
    load_config,
    nameko_config,
)

pytestmark = pytest.mark.usefixtures("no_os_environment")


def config_with(**defaults):
    conf = load_config([])
    for name, value in defaults.items():
        conf.set_override(name, value)
    return conf


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tessera.conf"
    path.write_text(textwrap.dedent(text))
    return path


# --- amqp_uri ---


@pytest.mark.parametrize(
    ("transport_url", "uri"),
    [
        ("rabbit://guest:guest@127.0.0.1:5672/", "amqp://guest:guest@127.0.0.1:5672/"),
        ("rabbit://u:p@mq:5672/tessera", "amqp://u:p@mq:5672/tessera"),
        ("kombu://u:p@mq:5672/", "amqp://u:p@mq:5672/"),
        ("amqp://u:p@mq:5672/", "amqp://u:p@mq:5672/"),
    ],
)
def test_transport_url_becomes_an_amqp_uri(transport_url, uri):
    assert amqp_uri(config_with(transport_url=transport_url)) == uri


def test_multi_host_transport_url_becomes_kombu_failover_list():
    conf = config_with(transport_url="rabbit://u:p@mq1:5672,mq2:5673/vh")
    assert amqp_uri(conf) == "amqp://u:p@mq1:5672/vh;amqp://u:p@mq2:5673/vh"


def test_multi_host_transport_url_keeps_each_hosts_credentials():
    conf = config_with(transport_url="rabbit://a:1@mq1:5672,b:2@mq2:5672/vh")
    assert amqp_uri(conf) == "amqp://a:1@mq1:5672/vh;amqp://b:2@mq2:5672/vh"


def test_nameko_config_carries_the_amqp_uri():
    conf = config_with(transport_url="rabbit://u:p@mq:5672/")
    assert nameko_config(conf)["AMQP_URI"] == "amqp://u:p@mq:5672/"


# --- database_url ---


def test_default_database_is_sqlite_under_data_dir(tmp_path):
    conf = config_with(data_dir=str(tmp_path))
    assert database_url(conf) == f"sqlite:///{tmp_path / 'tessera.sqlite'}"


def test_mysql_url_uses_pymysql():
    conf = load_config([])
    conf.set_override("connection", "mysql://glance:pw@db/glance", group="database")
    assert database_url(conf) == "mysql+pymysql://glance:pw@db/glance"


def test_other_database_urls_are_kept():
    conf = load_config([])
    conf.set_override("connection", "mysql+pymysql://g:pw@db/glance", group="database")
    assert database_url(conf) == "mysql+pymysql://g:pw@db/glance"


# --- --config-file and environment ---


def test_config_file_uses_glance_section_names(tmp_path):
    path = write_config(
        tmp_path,
        """
        [DEFAULT]
        transport_url = rabbit://u:p@mq.example:5672/images
        api_limit_max = 50

        [database]
        connection = mysql://glance:pw@db.example/glance

        [image_format]
        disk_formats = raw,qcow2

        [glance_store]
        filesystem_store_datadir = /srv/images
        """,
    )
    conf = load_config(["--config-file", str(path)])
    assert conf.transport_url == "rabbit://u:p@mq.example:5672/images"
    assert amqp_uri(conf) == "amqp://u:p@mq.example:5672/images"
    assert conf.api_limit_max == 50
    assert database_url(conf) == "mysql+pymysql://glance:pw@db.example/glance"
    assert conf.image_format.disk_formats == ["raw", "qcow2"]
    assert filesystem_store_datadir(conf) == Path("/srv/images")


def test_defaults_without_a_config_file(tmp_path):
    conf = load_config([])
    assert conf.transport_url == "rabbit://guest:guest@127.0.0.1:5672/"
    assert "qcow2" in conf.image_format.disk_formats
    assert conf.database.connection is None
    conf.set_override("data_dir", str(tmp_path))
    assert filesystem_store_datadir(conf) == tmp_path / "images"


def test_environment_overrides_the_database_connection(monkeypatch, tmp_path):
    path = write_config(
        tmp_path,
        """
        [database]
        connection = sqlite:////from/file.sqlite
        """,
    )
    monkeypatch.setenv("OS_DATABASE__CONNECTION", "mysql://env:pw@envdb/glance")
    conf = load_config(["--config-file", str(path)])
    assert database_url(conf) == "mysql+pymysql://env:pw@envdb/glance"


def test_environment_sets_default_group_options(monkeypatch):
    monkeypatch.setenv("OS_DEFAULT__TRANSPORT_URL", "rabbit://e:e@envmq:5672/")
    assert amqp_uri(load_config([])) == "amqp://e:e@envmq:5672/"
