"""nameko dependency providers of the registry: the database."""

from __future__ import annotations

from nameko.extensions import DependencyProvider
from sqlalchemy.orm import sessionmaker

from services.registry.db import make_engine


class Database(DependencyProvider):
    """Injects a sessionmaker; service methods run each call in one transaction with
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
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def stop(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx) -> sessionmaker:
        return self.sessions
