"""The scrubber: what ``glance-scrubber --daemon`` does, as a timer of every store replica.

Every ``wakeup_time`` seconds each replica runs it; the registry hands out the images
pending delete for longer than ``scrub_time``, each to one replica only (a claim with a
lease, services/registry/scrubbing.py), ``scrub_pool_size`` at a time. For each claimed
image the replica deletes the data of its pending locations (data already gone is not an
error), then the registry records them and marks the image ``deleted``. The claim is
renewed while the data is deleted; a replica killed mid-scrub leaves a claim that lapses
after ``[store] scrub_lease_seconds`` and the next run, on any replica, finishes the job.
An image whose data cannot all be deleted stays ``pending_delete`` and is tried again by
the next run (as Glance)."""

from __future__ import annotations

import logging

import eventlet
from eventlet.semaphore import Semaphore
from nameko.timer import Timer

from services.common.errors import Conflict, TesseraError

log = logging.getLogger(__name__)

#: seconds between runs when ``wakeup_time`` is 0 (Glance's daemon would spin)
MIN_WAKEUP = 1


class ScrubTimer(Timer):
    """nameko's timer, every ``wakeup_time`` seconds of the service's configuration."""

    def __init__(self, **kwargs):
        super().__init__(interval=MIN_WAKEUP, **kwargs)

    def setup(self):
        self.interval = max(self.container.config["TESSERA_CONF"].wakeup_time, MIN_WAKEUP)


scrub_timer = ScrubTimer.decorator


class Lease:
    """Keeps one claim of the registry alive while its work is done: ``renew(token)``
    (an RPC answering the new token) is called every third of the lease by a green
    thread; ``stop()`` ends the renewals and returns the live token. Used for each
    image the scrubber claims and for the store sweep's claim (services/store/sweep.py);
    ``what`` names the claim in the log."""

    def __init__(self, renew, token: str, lease_seconds: int, what: str):
        self.renew = renew
        self.what = what
        self.token = token
        self.interval = max(1.0, lease_seconds / 3)
        self.lock = Semaphore()
        self.thread = eventlet.spawn(self._renew)

    def _renew(self) -> None:
        while True:
            eventlet.sleep(self.interval)
            with self.lock:
                try:
                    self.token = self.renew(self.token)
                except Exception as exc:  # noqa: BLE001 - finishing will say the claim is lost
                    log.warning("could not renew the %s: %s", self.what, exc)
                    return

    def stop(self) -> str:
        with self.lock:  # never in the middle of a renewal
            self.thread.kill()
        return self.token


def delete_data(backends, url: str) -> None:
    """Delete one location's data; data on a read-only store (http) is not ours."""
    backend = backends.for_location(url)
    if backend.writable:
        backend.delete(url)


def scrub_image(registry, backends, claim: dict, lease_seconds: int) -> bool:
    image_id = claim["image_id"]
    log.info("scrubbing image %s from %d locations", image_id, len(claim["locations"]))
    lease = Lease(
        lambda token: registry.renew_scrub(image_id, token),
        claim["token"],
        lease_seconds,
        f"scrub of image {image_id}",
    )
    scrubbed = []
    try:
        for location in claim["locations"]:
            try:
                delete_data(backends, location["url"])
                scrubbed.append(location["id"])
            except TesseraError as exc:
                log.warning("could not scrub image %s from a location: %s", image_id, exc)
    finally:
        token = lease.stop()
    try:
        done = registry.finish_scrub(image_id, token, scrubbed)
    except Conflict as exc:
        # another replica took the claim over (this one stalled past its lease)
        log.warning("gave up scrubbing image %s: %s", image_id, exc)
        return False
    if done:
        log.info("scrubbed image %s", image_id)
    else:
        log.warning(
            "one or more locations of image %s could not be scrubbed; it stays pending_delete",
            image_id,
        )
    return done


def _scrub_one(registry, backends, claim: dict, lease_seconds: int) -> bool:
    """scrub_image, where anything unexpected (the registry gone mid-scrub) fails this
    image only: its claim lapses and a later run finishes it."""
    try:
        return scrub_image(registry, backends, claim, lease_seconds)
    except Exception:  # noqa: BLE001 - the run goes on with the other images
        log.exception("scrubbing image %s failed; a later run resumes it", claim["image_id"])
        return False


def run(registry, backends, conf) -> int:
    """One scrubber run over every image due; returns how many this replica scrubbed."""
    pool = eventlet.GreenPool(conf.scrub_pool_size)
    after, scrubbed = None, 0
    while True:
        batch = registry.claim_scrub(conf.scrub_pool_size, after)
        threads = [
            pool.spawn(_scrub_one, registry, backends, claim, conf.store.scrub_lease_seconds)
            for claim in batch["claims"]
        ]
        scrubbed += sum(thread.wait() for thread in threads)
        after = batch["next"]
        if after is None:
            return scrubbed
