"""The cache service: one beside each API host. This first version answers a health
check (pruning, cleaning and prefetching come with the cache issue)."""

from __future__ import annotations

from services.common.rpc import rpc


class CacheService:
    name = "cache"

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}
