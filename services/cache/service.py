"""The cache service: one beside each API node, sharing its cache directory with the
node's gateway (which fills the cache as downloads pass and serves the hits).

- prefetcher: fills the images queued for caching (``PUT /v2/cache/{id}``,
  ``tessera-manage cache queue``), one at a time, from a store replica;
- pruner: keeps the cache under ``image_cache_max_size``, least recently used first (on
  a timer; a fill that takes the cache over its size prunes at once);
- cleaner: removes abandoned, stalled and invalid files (services/cache/index.py);
- events: every node drops an image that is deleted or deactivated, or loses a location,
  through broadcast handlers whose queues keep what is sent while the node is down
  (services/cache/events.py). The gateway never serves a cached file without checking it
  against the registry's record first, so a missed event costs disk space, not
  correctness.

It also sends Glance's ``image.send`` for the downloads the node's gateway serves from
its cache (the store sends it for the others). With the cache off it answers its health
check and nothing else."""

from __future__ import annotations

import http.client
import logging
from urllib.parse import urlsplit

import eventlet
from nameko.extensions import DependencyProvider
from nameko.rpc import RpcProxy
from nameko.timer import timer

from services.cache.events import node_event_handler
from services.cache.fill import Fill, cacheable
from services.cache.index import ImageCache
from services.common.config import image_cache_settings
from services.common.context import RequestContext
from services.common.notifications import Notifications
from services.common.rpc import Settings, rpc

log = logging.getLogger(__name__)

PREFETCH_INTERVAL = 1.0  # seconds between two looks at the queue
PRUNE_INTERVAL = 60.0
CLEAN_INTERVAL = 300.0
RPC_TIMEOUT = 30.0
BLOCK = 1 << 20


class NodeCache(DependencyProvider):
    """This node's ImageCache, or None when the cache is off."""

    def setup(self):
        settings = image_cache_settings(self.container.config["TESSERA_CONF"])
        for warning in settings.warnings:
            log.warning("%s", warning)
        self.cache = ImageCache.from_settings(settings) if settings.enabled else None
        if self.cache is not None:
            log.info(
                "image cache at %s (image_cache_max_size %d bytes)",
                settings.directory,
                settings.max_size,
            )

    def get_dependency(self, worker_ctx):
        return self.cache


class ServiceContext(DependencyProvider):
    """The cache service's own calls (timers, events) run as the cloud's admin: the
    prefetcher reads any image the operator queued."""

    def worker_setup(self, worker_ctx):
        if "request_id" not in worker_ctx.data:
            worker_ctx.data.update(RequestContext(roles=("admin",), is_admin=True).to_headers())


class CacheService:
    name = "cache"

    conf = Settings()
    cache = NodeCache()
    context = ServiceContext()
    registry = RpcProxy("registry")
    store = RpcProxy("store")
    notifier = Notifications()

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}

    @rpc
    def image_sent(self, payload: dict, complete: bool) -> None:
        """Glance's ``image.send`` for a download a gateway served from its cache
        (``payload`` as the store's: bytes_sent, image_id, owner_id, receiver_tenant_id,
        receiver_user_id); ERROR when the client got fewer bytes than it asked for."""
        if complete:
            self.notifier.info("image.send", payload)
        else:
            self.notifier.error("image.send", payload)

    # --- events: every node drops the image

    @node_event_handler("registry", "image.deleted")
    def evict_deleted(self, payload: dict) -> None:
        self._evict(payload, "deleted", dequeue=True)

    @node_event_handler("registry", "image.deactivated")
    def evict_deactivated(self, payload: dict) -> None:
        self._evict(payload, "deactivated")

    @node_event_handler("registry", "location.removed")
    def evict_relocated(self, payload: dict) -> None:
        self._evict(payload, "changed locations")

    def _evict(self, payload: dict, why: str, dequeue: bool = False) -> None:
        if self.cache is None:
            return
        image_id = payload.get("image_id") or ""
        evicted = self.cache.evict(image_id)
        if dequeue:
            self.cache.dequeue(image_id)
        if evicted:
            log.info("image %s %s: removed from the cache", image_id, why)

    # --- timers

    @timer(interval=PRUNE_INTERVAL)
    def prune(self) -> None:
        if self.cache is not None:
            files, size = self.cache.prune()
            if files:
                log.info("pruned %d images (%d bytes) from the cache", files, size)

    @timer(interval=CLEAN_INTERVAL)
    def clean(self) -> None:
        if self.cache is not None:
            removed = self.cache.clean()
            if removed:
                log.info("cleaned %d files from the cache", removed)

    @timer(interval=PREFETCH_INTERVAL)
    def prefetch(self) -> None:
        if self.cache is None:
            return
        for image_id in self.cache.queued_images():
            try:
                self._prefetch(image_id)
            except (Exception, eventlet.Timeout) as exc:  # noqa: BLE001 - any failure, one image
                log.warning(
                    "image %s: prefetching failed (%s); dropped from the queue", image_id, exc
                )
                self.cache.dequeue(image_id)

    def _prefetch(self, image_id: str) -> None:
        with eventlet.Timeout(RPC_TIMEOUT):
            image = self.registry.get_image(image_id)
        if not cacheable(image) or self.cache.is_cached(image_id):
            log.info("image %s: not prefetched (cached, or not active)", image_id)
            self.cache.dequeue(image_id)
            return
        fill = Fill.start(self.cache, image)
        if fill is None:  # a download is filling it now; look again next time
            return
        try:
            with eventlet.Timeout(RPC_TIMEOUT):
                first = image["locations"][0]  # its store id: the backend reading it
                session = self.store.open_download(
                    first["url"], 0, None, None, first["metadata"].get("store")
                )
            self._download(session["url"], fill, image["size"])
        except BaseException:
            fill.abort()
            raise
        if fill.finish(pause=eventlet.sleep):
            log.info("image %s: prefetched", image_id)
        self.cache.dequeue(image_id)

    @staticmethod
    def _download(url: str, fill: Fill, size: int) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=RPC_TIMEOUT)
        try:
            conn.request("GET", parts.path)
            resp = conn.getresponse()
            if resp.status != 200:
                raise http.client.HTTPException(f"the store answered {resp.status}")
            while fill.written < size:
                block = resp.read(min(BLOCK, size - fill.written))
                if not block:
                    raise http.client.IncompleteRead(b"", size - fill.written)
                fill.write(block)
        finally:
            conn.close()
