"""The store sweep: removes file store data that no image owns.

Data can outlive what the registry knows of it: an upload whose file was complete but
whose completion never reached the registry (the broker or the registry went away; the
lease lapsed and the image is ``queued`` again), the partial write of a replica killed
mid-upload when the ``upload.abandoned`` event was lost, the file of an image deleted
while nothing recorded it. Every ``[store] sweep_interval`` seconds one store replica of
the cluster (a claim with a lease through the registry, services/registry/sweeping.py,
kept alive as the scrubber keeps its claims) lists the file store and asks the registry
about the images the files are named after. A file is removed when it is older than
``[store] sweep_grace_seconds`` and:

- ``<image_id>.<upload_id>.part`` (a partial write): that upload is not in progress;
- ``<image_id>`` (complete data): no live location of the image names it (a copy in
  another file store does not count) and no upload of it is in progress (unknown,
  deleted or queued images, or an import's copy never recorded; a file renamed into
  place just before its upload is recorded is never taken);
- and only if it is still the file the sweep looked at (same inode, size and mtime).

Files whose names are not an image id are not Tessera's and are left alone."""

from __future__ import annotations

import logging
import time
import uuid

from eventlet import tpool
from kombu.exceptions import OperationalError
from nameko.timer import Timer

from services.common.errors import Conflict, ServiceUnavailable
from services.store.scrubber import Lease

log = logging.getLogger(__name__)

#: image ids asked about in one RPC
BATCH = 500
#: seconds between timer ticks while the sweep is off
IDLE_TICK = 60


class SweepTimer(Timer):
    """nameko's timer, every ``[store] sweep_interval`` seconds on every replica (the
    registry's claim lets one of them sweep)."""

    def __init__(self, **kwargs):
        super().__init__(interval=IDLE_TICK, **kwargs)

    def setup(self):
        interval = self.container.config["TESSERA_CONF"].store.sweep_interval
        self.interval = interval or IDLE_TICK


sweep_timer = SweepTimer.decorator


def parse_name(name: str) -> tuple[str, str | None] | None:
    """``(image_id, upload_id)`` of a file store name (``upload_id`` None for complete
    data); None for a name that is not Tessera's."""
    image_id, _, rest = name.partition(".")
    try:
        uuid.UUID(image_id)
    except ValueError:
        return None
    if len(image_id) != 36:
        return None
    if not rest:
        return image_id, None
    upload_id, _, suffix = rest.partition(".")
    return (image_id, upload_id) if suffix == "part" and upload_id else None


def orphan_reason(backend, image_id: str, upload_id: str | None, state: dict | None) -> str | None:
    """Why the file of the file store ``backend`` is an orphan, or None when the image
    owns it (``state``: what the registry answered for the image, None when it knows no
    such image). The sweep asks, and so does a replica told an import was abandoned
    before it removes the import's complete copy."""
    if state is None:
        return "data of no image the registry knows"
    if upload_id is not None:
        if state["upload_id"] == upload_id:
            return None
        return "a partial write of no upload in progress"
    path = backend.datadir / image_id
    for location in state["locations"]:  # a copy in another file store does not own it
        if backend.holds(location) and backend.local_path(location) == path:
            return None
    if state["upload_id"] is not None:
        return None  # renamed into place, about to be recorded
    return f"data of a {state['status']} image that has no location for it"


def sweep_files(registry, backend, grace_seconds: int) -> int:
    """One pass over the file store; returns how many files were removed."""
    now = time.time()
    candidates = []
    for name, stat in tpool.execute(backend.files):
        parsed = parse_name(name)
        if parsed is not None and now - stat.st_mtime >= grace_seconds:
            candidates.append((name, stat, *parsed))
    removed = 0
    for start in range(0, len(candidates), BATCH):
        batch = candidates[start : start + BATCH]
        states = registry.sweep_states(sorted({c[2] for c in batch}))
        for name, stat, image_id, upload_id in batch:
            reason = orphan_reason(backend, image_id, upload_id, states.get(image_id))
            if reason and backend.remove_unchanged(name, stat):
                log.info("sweep removed %s: %s", name, reason)
                removed += 1
    return removed


def run(registry, backends, conf) -> int:
    """One sweep, when it is due and this replica claims it; returns the files removed."""
    file_stores = backends.file_stores()
    if not conf.store.sweep_interval or not file_stores:
        return 0
    try:
        token = registry.claim_sweep()
    except Conflict:  # another replica made the first claim at the same moment
        return 0
    except (ServiceUnavailable, OperationalError, OSError) as exc:
        log.warning("store sweep skipped: %s", exc)  # the next tick tries again
        return 0
    if token is None:
        return 0
    lease = Lease(registry.renew_sweep, token, conf.store.sweep_lease_seconds, "store sweep")
    try:
        removed = sum(
            sweep_files(registry, backend, conf.store.sweep_grace_seconds)
            for backend in file_stores
        )
    finally:
        token = lease.stop()
    registry.finish_sweep(token)
    if removed:
        log.info("store sweep removed %d orphan files", removed)
    return removed
