"""The registry's side of the store sweep (services/store/sweep.py): a claim that makes
the sweep run once per ``sweep_interval`` across the cluster, and what the registry knows
of the images whose files the sweep finds.

The claim is one row of the ``tasks`` table, ``id = SWEEP_ID``, that no API ever shows
(``deleted`` is set; the Tasks API lists live tasks only): its ``expires_at`` is the end
of the claim's lease and, as the scrubber's claims (services/registry/scrubbing.py), the
token only the holder knows. Claiming and renewing are compare-and-set UPDATEs on it.
A sweep that ends moves it to the time of the next sweep, so whichever replica's timer
fires first after that runs it; a replica killed mid-sweep leaves a lease that lapses."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.common.errors import Conflict
from services.registry.models import Image, ImageLocation, ImageUpload, Task, utcnow
from services.registry.scrubbing import _stamp

SWEEP_ID = "tessera-store-sweep"
#: locations whose data the store must keep
KEPT_LOCATIONS = ("active", "pending_delete")


def _move(session: Session, current: datetime, new: datetime) -> bool:
    result = session.execute(
        update(Task)
        .where(Task.id == SWEEP_ID, Task.expires_at == current)
        .values(expires_at=new, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def claim(session: Session, lease_seconds: int) -> str | None:
    """The sweep's token when it is due and this caller won it, else None. Two first
    claims at once: one inserts, the other's IntegrityError is a Conflict (lost)."""
    now = utcnow()
    end = now + timedelta(seconds=lease_seconds)
    row = session.get(Task, SWEEP_ID)
    if row is None:
        session.add(
            Task(
                id=SWEEP_ID,
                type="store_sweep",
                status="processing",
                deleted=True,
                created_at=now,
                updated_at=now,
                expires_at=end,
            )
        )
        session.flush()
        return _stamp(end)
    if row.expires_at is not None and row.expires_at > now:
        return None
    return _stamp(end) if _move(session, row.expires_at, end) else None


def renew(session: Session, token: str, lease_seconds: int) -> str:
    new = utcnow() + timedelta(seconds=lease_seconds)
    if not _move(session, datetime.fromisoformat(token), new):
        raise Conflict("The store sweep's claim was lost.")
    return _stamp(new)


def finish(session: Session, token: str, interval: int) -> None:
    """The sweep is done: the next one is due ``interval`` seconds from now."""
    _move(session, datetime.fromisoformat(token), utcnow() + timedelta(seconds=interval))


def image_states(session: Session, image_ids: list[str]) -> dict:
    """For each image id the registry knows (deleted ones included): its status, the
    upload in progress (``upload_id``) and the locations whose data is kept."""
    states = {
        row.id: {"status": row.status, "upload_id": None, "locations": []}
        for row in session.execute(select(Image.id, Image.status).where(Image.id.in_(image_ids)))
    }
    for row in session.execute(
        select(ImageUpload.image_id, ImageUpload.upload_id).where(
            ImageUpload.image_id.in_(image_ids)
        )
    ):
        states[row.image_id]["upload_id"] = row.upload_id
    for row in session.execute(
        select(ImageLocation.image_id, ImageLocation.value).where(
            ImageLocation.image_id.in_(image_ids), ImageLocation.status.in_(KEPT_LOCATIONS)
        )
    ):
        states[row.image_id]["locations"].append(row.value)
    return states
