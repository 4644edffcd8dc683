"""A database that is down or frozen is the caller's 503 (ServiceUnavailable) after
PyMySQL's timeouts, never an unexpected error (a 500) or a hang."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from services.common.config import load_config
from services.common.errors import ServiceUnavailable
from services.registry.db import make_engine, mysql_connect_args
from services.registry.dependencies import UNAVAILABLE_MESSAGE, Transactions


def _transactions(url: str, *extra: str) -> Transactions:
    conf = load_config([])
    conf.set_override("connection", url, group="database")
    conf.set_override("socket_timeout", 1, group="database")
    for option in extra:
        name, value = option.split("=", 1)
        conf.set_override(name, value, group="database")
    return Transactions(sessionmaker(make_engine(conf, pool_size=2)))


@pytest.fixture
def frozen_server():
    """A port that accepts connections and never answers (a SIGSTOPped database)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_timeouts_from_socket_timeout_and_connection_parameters():
    conf = load_config([])
    assert mysql_connect_args(conf) == dict.fromkeys(
        ("connect_timeout", "read_timeout", "write_timeout"), 3
    )
    conf.set_override("connection_parameters", "read_timeout=30&charset=utf8", group="database")
    args = mysql_connect_args(conf)
    assert args["read_timeout"] == 30 and args["connect_timeout"] == 3
    assert args["charset"] == "utf8"
    conf.set_override("socket_timeout", 0, group="database")
    conf.set_override("connection_parameters", "", group="database")
    assert mysql_connect_args(conf) == {}


@pytest.mark.parametrize("method", ["begin", "read"])
def test_database_down_is_service_unavailable(closed_port, method):
    db = _transactions(f"mysql://root@127.0.0.1:{closed_port}/tessera")
    with pytest.raises(ServiceUnavailable, match=UNAVAILABLE_MESSAGE):
        with getattr(db, method)() as conn:
            conn.execute(text("SELECT 1"))


def test_frozen_database_is_service_unavailable(frozen_server):
    db = _transactions(f"mysql://root@127.0.0.1:{frozen_server}/tessera")
    with pytest.raises(ServiceUnavailable, match=UNAVAILABLE_MESSAGE):
        with db.read() as conn:
            conn.execute(text("SELECT 1"))


def test_sqlite_that_cannot_open_is_service_unavailable(tmp_path):
    db = _transactions(f"sqlite:///{tmp_path}/missing/dir/tessera.sqlite")
    with pytest.raises(ServiceUnavailable):
        with db.begin() as session:
            session.execute(text("SELECT 1"))
