"""Delayed delete (Glance's ``delayed_delete``): the registry's side of the scrubber.

With delayed delete on, deleting an image that has data makes it ``pending_delete``: it is
deleted for the API (``deleted`` is set, as in Glance: hidden from lists, 404 on show and
download) and its locations are ``pending_delete``, but its data, properties, tags and
members stay until the scrubber (services/store/scrubber.py, a timer of every store
replica) deletes the data, ``scrub_time`` seconds later, and marks it ``deleted``. Until
then ``tessera-manage scrubber restore <image-id>`` brings it back whole.

Any store replica may scrub; each image is claimed here by one compare-and-set on
``images.updated_at``, which holds the claim while the image is pending:

- never claimed: ``updated_at == deleted_at`` (the delete sets both);
- claimed: ``updated_at`` is the end of the claim's lease, in the future while its
  holder renews it; that value is the token only the holder knows;
- claimable: ``updated_at <= now`` (never claimed, or the holder stopped renewing).

The holder deletes the data first and records it afterwards, only with a live token. A
replica killed mid-scrub leaves a claim that lapses; the next run takes it over, deletes
again (deleting data that is gone is not an error) and records: the registry never loses
track of data, and no file is orphaned. An image once claimed can no longer be restored
(some of its data may be gone)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from services.common.errors import BadRequest, Conflict, InvalidTransition, NotFound, TesseraError
from services.common.states import check_image_transition
from services.registry.models import (
    Image,
    ImageLocation,
    ImageMember,
    ImageProperty,
    ImageTag,
    utcnow,
)


def _stamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def mark_pending_delete(session: Session, image: Image) -> bool:
    """Delete ``image`` later if it has data: ``pending_delete`` with its locations, its
    data and children kept. False when it has none (Glance deletes it at once)."""
    if not any(loc.status == "active" for loc in image.locations):
        return False
    try:
        check_image_transition(image.status, "pending_delete")
    except InvalidTransition as exc:
        # Glance's answer for a deactivated image under delayed delete
        raise BadRequest(str(exc)) from None
    now = utcnow()
    result = session.execute(
        update(Image)
        .where(Image.id == image.id, Image.status == image.status)
        .values(status="pending_delete", deleted=True, deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"Image {image.id} is no longer {image.status}")
    session.execute(
        update(ImageLocation)
        .where(ImageLocation.image_id == image.id, ImageLocation.status == "active")
        .values(status="pending_delete")
        .execution_options(synchronize_session=False)
    )
    return True


def claim_due(
    session: Session, scrub_time: int, lease_seconds: int, limit: int, after: list | None
) -> dict:
    """Claim up to ``limit`` images pending for ``scrub_time`` seconds or more, in
    ``(deleted_at, id)`` order after the cursor ``after``. Returns ``{"claims": [...],
    "next": cursor}``; ``next`` is None once no image due is left after the cursor
    (claims another replica won are skipped, not waited for)."""
    now = utcnow()
    query = (
        select(Image.id, Image.deleted_at, Image.updated_at)
        .where(
            Image.status == "pending_delete",
            Image.deleted_at <= now - timedelta(seconds=scrub_time),
            Image.updated_at <= now,
        )
        .order_by(Image.deleted_at, Image.id)
        .limit(limit)
    )
    if after:
        deleted_at, image_id = datetime.fromisoformat(after[0]), after[1]
        query = query.where(
            or_(
                Image.deleted_at > deleted_at,
                and_(Image.deleted_at == deleted_at, Image.id > image_id),
            )
        )
    rows = session.execute(query).all()
    claims = []
    for row in rows:
        lease_end = now + timedelta(seconds=lease_seconds)
        if _move_claim(session, row.id, row.updated_at, lease_end):
            locations = session.execute(
                select(ImageLocation.id, ImageLocation.value)
                .where(ImageLocation.image_id == row.id, ImageLocation.status == "pending_delete")
                .order_by(ImageLocation.id)
            ).all()
            claims.append(
                {
                    "image_id": row.id,
                    "token": _stamp(lease_end),
                    "locations": [{"id": loc.id, "url": loc.value} for loc in locations],
                }
            )
    cursor = [_stamp(rows[-1].deleted_at), rows[-1].id] if rows else None
    return {"claims": claims, "next": cursor}


def _move_claim(session: Session, image_id: str, current: datetime, new: datetime) -> bool:
    """The compare-and-set of every claim change: ``updated_at`` from ``current`` to
    ``new`` while the image is pending."""
    result = session.execute(
        update(Image)
        .where(
            Image.id == image_id,
            Image.status == "pending_delete",
            Image.updated_at == current,
        )
        .values(updated_at=new)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def renew_claim(session: Session, image_id: str, token: str, lease_seconds: int) -> str:
    """Extend a live claim; returns its new token. Conflict when the claim was lost."""
    new = utcnow() + timedelta(seconds=lease_seconds)
    if not _move_claim(session, image_id, datetime.fromisoformat(token), new):
        raise Conflict(f"The scrubber's claim on image {image_id} was lost.")
    return _stamp(new)


def finish(session: Session, image_id: str, token: str, scrubbed: list[int]) -> bool:
    """Record what the claim's holder deleted: the locations ``scrubbed`` become
    ``deleted``; when none is left pending, the image becomes ``deleted`` (its
    properties, tags and members go, as an immediate delete removes them). Otherwise the
    claim is released for the next run. Returns whether the image is scrubbed."""
    now = utcnow()
    if not _move_claim(session, image_id, datetime.fromisoformat(token), now):
        raise Conflict(f"The scrubber's claim on image {image_id} was lost.")
    if scrubbed:
        session.execute(
            update(ImageLocation)
            .where(
                ImageLocation.image_id == image_id,
                ImageLocation.id.in_(scrubbed),
                ImageLocation.status == "pending_delete",
            )
            .values(status="deleted")
            .execution_options(synchronize_session=False)
        )
    left = session.scalar(
        select(ImageLocation.id)
        .where(ImageLocation.image_id == image_id, ImageLocation.status == "pending_delete")
        .limit(1)
    )
    if left is not None:
        return False
    check_image_transition("pending_delete", "deleted")
    session.execute(
        update(Image)
        .where(Image.id == image_id, Image.status == "pending_delete", Image.updated_at == now)
        .values(status="deleted")
        .execution_options(synchronize_session=False)
    )
    for child in (ImageTag, ImageProperty, ImageMember):
        session.execute(delete(child).where(child.image_id == image_id))
    return True


def restore(session: Session, image_id: str) -> None:
    """``pending_delete`` → ``active`` with its locations, as before the delete (what
    ``glance-scrubber --restore`` does), unless the scrubber has claimed it."""
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"No image found with ID {image_id}")
    if image.status != "pending_delete":
        raise Conflict(
            f"cannot restore the image from {image.status} to active "
            f"(wanted from_state=pending_delete)"
        )
    check_image_transition("pending_delete", "active")
    result = session.execute(
        update(Image)
        .where(
            Image.id == image_id,
            Image.status == "pending_delete",
            Image.updated_at == Image.deleted_at,
        )
        .values(status="active", deleted=False, deleted_at=None, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(
            f"Image {image_id} is being scrubbed (or was partly scrubbed): its data may be "
            f"gone, it cannot be restored."
        )
    session.execute(
        update(ImageLocation)
        .where(ImageLocation.image_id == image_id, ImageLocation.status == "pending_delete")
        .values(status="active")
        .execution_options(synchronize_session=False)
    )


# --- tessera-manage scrubber ...


def _restore_command(conf, args) -> None:
    from services.registry.db import make_engine

    engine = make_engine(conf, pool_size=1)
    try:
        with Session(engine) as session, session.begin():
            restore(session, args.image_id)
    except TesseraError as exc:
        sys.exit(f"ERROR: {exc}")
    finally:
        engine.dispose()
    print(f"Image {args.image_id} restored to active.")


def add_commands(subparsers) -> None:
    """``tessera-manage scrubber restore IMAGE_ID`` (services/registry/manage.py)."""
    scrubber = subparsers.add_parser(
        "scrubber", help="images pending delete (delayed_delete)"
    ).add_subparsers(dest="action", required=True)
    restore_parser = scrubber.add_parser(
        "restore",
        help="bring a pending_delete image back to active, with its data "
        "(glance-scrubber --restore)",
    )
    restore_parser.add_argument("image_id")
    restore_parser.set_defaults(run=_restore_command)
