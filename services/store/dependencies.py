"""nameko dependency providers of the store: the backends, the replica's data port
address and its one-time transfer sessions."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlparse

from nameko.extensions import DependencyProvider

from services.common.config import (
    default_backend,
    enabled_backends,
    filesystem_store_datadir,
    store_datadir,
    store_names,
)
from services.common.errors import BadRequest, NotFound, StoreUnavailable
from services.common.url_filter import UrlFilter
from services.store.backends.file import FileStore
from services.store.backends.swift_config import BadSwiftConfig
from services.store.dataport import DataHandler

log = logging.getLogger(__name__)

SESSION_TTL = 120  # seconds a one-time URL stays valid unused


def build_backends(conf, unusable: dict | None = None) -> dict:
    """The enabled backends by store id: those of ``[DEFAULT] enabled_backends`` (each
    configured by the section named by its id), else those of ``[glance_store] stores``
    (id = type). A store whose configuration is incomplete is left out with an error
    logged (and its reason put in ``unusable``), as glance_store disables it: the service
    still starts."""
    multi = enabled_backends(conf)
    stores = multi.items() if multi else ((name, name) for name in store_names(conf))
    backends = {}
    for store_id, kind in stores:  # unsupported types: warned about at start-up
        if kind == "file":
            datadir = store_datadir(conf, store_id) if multi else filesystem_store_datadir(conf)
            backends[store_id] = FileStore(datadir)
        elif kind == "http":
            from services.store.backends.http import HttpStore

            backends[store_id] = HttpStore(url_filter=UrlFilter.from_config(conf))
        elif kind == "swift":
            from services.store.backends.swift_config import swift_store_from_config

            try:
                group = conf[store_id] if multi else conf.glance_store
                backends[store_id] = swift_store_from_config(conf, group)
            except BadSwiftConfig as exc:
                name = f"swift store {store_id}" if multi else "swift store"
                log.error("the %s cannot be used: %s", name, exc)
                if unusable is not None:
                    unusable[store_id] = str(exc)
    return backends


class Backends:
    def __init__(self, backends: dict, default: str, unusable: dict | None = None):
        self.by_name = backends
        self.unusable = unusable or {}
        if default not in backends and default not in self.unusable:
            raise ValueError(
                f"default_store {default!r} is not among the enabled stores {sorted(backends)}"
            )
        self.default_name = default

    @property
    def default(self):
        """The store receiving uploads; StoreUnavailable when its configuration is not
        usable (an upload is refused before the image is claimed)."""
        if self.default_name in self.unusable:
            raise StoreUnavailable(
                f"The default store {self.default_name} cannot be used: "
                f"{self.unusable[self.default_name]}"
            )
        return self.by_name[self.default_name]

    def file_stores(self) -> list:
        """The enabled file stores (several with multiple stores)."""
        return [b for b in self.by_name.values() if isinstance(b, FileStore)]

    def named(self, store_id: str):
        """The backend of store ``store_id``; BadRequest when no such store is enabled."""
        if store_id in self.unusable:
            reason = self.unusable[store_id]
            raise StoreUnavailable(f"The store {store_id} cannot be used: {reason}")
        try:
            return self.by_name[store_id]
        except KeyError:
            raise BadRequest(f"Unknown store {store_id!r}.") from None

    def for_location(self, location: str, store_id: str | None = None):
        """The backend reading ``location``: the store the location's metadata names
        when enabled, else the first whose schemes match (a file store: the one whose
        directory holds the file)."""
        if store_id in self.by_name:
            return self.by_name[store_id]
        scheme = urlparse(location).scheme
        matching = [b for b in self.by_name.values() if scheme in b.schemes]
        for backend in matching:
            if getattr(backend, "holds", lambda _loc: True)(location):
                return backend
        if matching:
            return matching[0]
        raise BadRequest(f"No enabled store reads locations like {location.split(':')[0]}:")


class StoreBackends(DependencyProvider):
    def setup(self):
        conf = self.container.config["TESSERA_CONF"]
        unusable: dict = {}
        backends = build_backends(conf, unusable)
        self.backends = Backends(backends, default_backend(conf), unusable)

    def get_dependency(self, worker_ctx) -> Backends:
        return self.backends


@dataclass
class TransferSession:
    kind: str  # "upload" or "download"
    data: dict
    created: float = field(default_factory=time.monotonic)


class Sessions:
    """One-time tokens for the data port, valid on this replica only."""

    def __init__(self):
        self._sessions: dict[str, TransferSession] = {}

    def add(self, kind: str, data: dict, token: str | None = None) -> str:
        self._expire()
        token = token or str(uuid.uuid4())
        self._sessions[token] = TransferSession(kind, data)
        return token

    def take(self, kind: str, token: str) -> dict:
        session = self._sessions.pop(token, None)
        if session is None or session.kind != kind:
            raise NotFound("This transfer URL is unknown, used or expired.")
        return session.data

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, s in self._sessions.items() if now - s.created > SESSION_TTL]:
            del self._sessions[token]


class DataPortUrl(DependencyProvider):
    """The base URL of this replica's data port, as the gateway reaches it."""

    def get_dependency(self, worker_ctx) -> str:
        for entrypoint in self.container.entrypoints:
            if isinstance(entrypoint, DataHandler):
                return entrypoint.server.base_url
        raise RuntimeError("the store service has no data port entrypoint")


class TransferSessions(DependencyProvider):
    def setup(self):
        self.sessions = Sessions()

    def get_dependency(self, worker_ctx) -> Sessions:
        return self.sessions
