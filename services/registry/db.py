"""The database engine of the registry (SQLite for the embedded default, MySQL/MariaDB
through PyMySQL).

A database that goes away costs a request a few seconds at most, never a hang: PyMySQL's
connect, read and write timeouts are ``[database] socket_timeout``, every pooled
connection is pinged before use (``pool_pre_ping``: a connection the outage broke is
replaced, so the registry reconnects by itself once the database is back), and the
registry's Database dependency turns the failures into ServiceUnavailable (503)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from sqlalchemy import create_engine, event

from services.common.config import database_url

#: PyMySQL's keyword arguments that ``[database] socket_timeout`` sets
MYSQL_TIMEOUTS = ("connect_timeout", "read_timeout", "write_timeout")


def mysql_connect_args(conf) -> dict:
    """PyMySQL's timeouts from ``socket_timeout`` (0: PyMySQL's own, no read timeout),
    under what ``connection_parameters`` and the URL's query name themselves."""
    timeout = conf.database.socket_timeout
    args = {name: timeout for name in MYSQL_TIMEOUTS} if timeout else {}
    for name, value in parse_qsl(conf.database.connection_parameters or ""):
        args[name] = int(value) if name in MYSQL_TIMEOUTS else value
    return args


def make_engine(conf, pool_size: int | None = None):
    url = database_url(conf)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        return engine
    return create_engine(
        url,
        pool_size=pool_size or conf.database.max_pool_size,
        max_overflow=conf.database.max_overflow,
        pool_recycle=conf.database.connection_recycle_time,
        pool_timeout=conf.database.pool_timeout,
        pool_pre_ping=True,
        connect_args=mysql_connect_args(conf),
    )
