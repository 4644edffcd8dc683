"""The database engine of the registry (SQLite for the embedded default, MySQL/MariaDB
through PyMySQL)."""

from __future__ import annotations

from sqlalchemy import create_engine, event

from services.common.config import database_url


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
        pool_pre_ping=True,
    )
