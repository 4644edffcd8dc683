"""nameko dependency providers of the registry: the database."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
from nameko.extensions import DependencyProvider
from sqlalchemy import Connection
from sqlalchemy.exc import (
    DataError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from services.common.errors import BadRequest, Conflict, ServiceUnavailable
from services.registry.db import make_engine

log = logging.getLogger(__name__)

#: the database cannot be reached, is frozen or went away mid-call (SQLAlchemy's
#: wrappers, and PyMySQL's own where one escapes them): a 503 the caller may retry
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeout,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
)
UNAVAILABLE_MESSAGE = "The database is unavailable, retry"


class Transactions:
    """``begin()``: one transaction, and the database's own refusals as typed errors (a
    value out of range or too long for its column is the caller's 400, a unique key taken
    meanwhile a 409, a database down, frozen or gone mid-call a 503), never a 500;
    ``read()`` for a call that only reads."""

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        #: when the database last failed a call (or, at first, when this registry
        #: started): leases were not renewed while it was away (see ``settled``)
        self.unavailable_at = time.monotonic()

    def settled(self, seconds: float) -> bool:
        """Whether the database has answered this registry for ``seconds`` without a
        failure: only then may a lease that was not renewed be taken for a dead holder
        rather than for renewals that could not get through."""
        return time.monotonic() - self.unavailable_at >= seconds

    @contextmanager
    def _unavailable_as_503(self) -> Iterator[None]:
        try:
            yield
        except UNAVAILABLE as exc:
            self.unavailable_at = time.monotonic()
            log.warning("database unavailable: %s", getattr(exc, "orig", None) or exc)
            raise ServiceUnavailable(UNAVAILABLE_MESSAGE) from None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A plain connection for a call that only reads: no ORM session to build and
        commit (about a tenth of a show's registry CPU)."""
        with self._unavailable_as_503(), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def begin(self) -> Iterator[Session]:
        try:
            with self._unavailable_as_503(), self.sessions.begin() as session:
                yield session
        except DataError as exc:
            raise BadRequest(f"A value does not fit its field: {exc.orig}") from None
        except IntegrityError as exc:
            raise Conflict(f"The change conflicts with another one: {exc.orig}") from None


class Database(DependencyProvider):
    """Injects Transactions; service methods run each call in one transaction with
    ``with self.db.begin() as session:``.

    The transaction commits inside the method on purpose: nameko sends the RPC reply
    before it calls ``worker_result``, so a commit there could reach the database after
    the caller already acted on the reply."""

    def setup(self):
        conf = self.container.config["TESSERA_CONF"]
        # the pool must hold a connection for every concurrent worker
        self.engine = make_engine(
            conf, pool_size=max(conf.database.max_pool_size, self.container.max_workers)
        )
        self.transactions = Transactions(sessionmaker(self.engine, expire_on_commit=False))

    def stop(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx) -> Transactions:
        return self.transactions
