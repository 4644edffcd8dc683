"""The leases of a store replica's uploads, renewed together.

While an upload runs, the registry holds a lease on it (``[store] upload_lease_seconds``,
5 s by default) that the replica writing the data renews; a replica that dies stops
renewing and the registry gives the upload up (the image is ``queued`` again, the
partial data removed) about a lease later, so the client's "retry" advice is soon true.

One RPC a second renews every upload of the replica (``renew_uploads``), not one RPC per
upload: under a load of many concurrent uploads, per-upload renewals queued behind each
other in the broker and the registry and came late enough to lose live uploads. The
green thread of the oldest upload sends it, without waiting for the reply (a slow reply
must not hold back the next renewal); when that upload ends, the next oldest takes over.
A renewal that does not get through is simply sent again a second later."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import eventlet
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)


class UploadLeases:
    def __init__(self, interval: float):
        self.interval = interval
        #: upload_id -> image_id of the uploads in progress, oldest first
        self.held: dict[str, str] = {}

    @contextmanager
    def holding(self, image_id: str, upload_id: str, registry) -> Iterator[None]:
        """Keep the upload's lease alive for the duration of the block; ``registry``:
        the calling worker's RPC proxy to the registry."""
        self.held[upload_id] = image_id
        thread = eventlet.spawn(self._renew, upload_id, registry)
        try:
            yield
        finally:
            del self.held[upload_id]
            thread.kill()

    def _renew(self, upload_id: str, registry) -> None:
        while True:
            eventlet.sleep(self.interval)
            if next(iter(self.held), None) != upload_id:
                continue  # an older upload renews for all
            try:
                registry.renew_uploads.call_async(list(self.held))
            except Exception as exc:  # noqa: BLE001 - sent again at the next tick
                log.warning("could not renew %d upload leases: %s", len(self.held), exc)


class UploadLeaseKeeper(DependencyProvider):
    """Injects the replica's UploadLeases (one renewal a second, a third of a shorter
    lease)."""

    def setup(self):
        conf = self.container.config["TESSERA_CONF"]
        self.leases = UploadLeases(min(1.0, conf.store.upload_lease_seconds / 3))

    def get_dependency(self, worker_ctx) -> UploadLeases:
        return self.leases
