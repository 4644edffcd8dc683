"""The store service: the only holder of store credentials. Run as N replicas; this
first version answers a health check (uploads and downloads come with issue #3)."""

from __future__ import annotations

from services.common.rpc import rpc


class StoreService:
    name = "store"

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}
