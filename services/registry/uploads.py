"""Uploads as the registry sees them: ``queued → saving → active``, back to ``queued``
when an upload fails or its store replica stops renewing its lease."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import BadRequest, Conflict, Gone, InvalidTransition
from services.registry import access, imports, unified_limits
from services.registry.images import change_status, get_visible, record_data
from services.registry.models import Image, ImageUpload, Task, utcnow
from services.registry.quotas import space_left


def begin_upload(
    session: Session,
    ctx: RequestContext,
    conf,
    image_id: str,
    upload_id: str,
    store: str,
    lease_seconds: int,
    size: int | None = None,
) -> dict:
    """Claim the image for one upload: queued → saving, with a lease. Returns what the
    store needs to check the bytes. ``size`` is the declared size, when there is one."""
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "upload_image", image)
    if image.status != "queued":
        raise Conflict(
            f"Image {image_id} is {image.status}: data can only be uploaded to a queued image."
        )
    unified_limits.enforce_upload(session, conf, ctx.project_id, size)
    uploading = unified_limits.uploading_limits(conf, ctx.project_id)  # before any write
    try:
        change_status(session, image_id, "queued", "saving")
    except (Conflict, InvalidTransition):
        raise Conflict(f"Image {image_id} is already being uploaded.") from None
    # the image now counts as uploading; a refusal rolls the claim back (still queued)
    unified_limits.enforce_uploading(session, ctx.project_id, uploading)
    imports._lease(session, image_id, upload_id, store, lease_seconds)
    return {
        "image_id": image_id,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "max_size": space_left(session, image.owner, conf),
    }


def _claimed(session: Session, image_id: str, upload_id: str) -> ImageUpload:
    upload = session.get(ImageUpload, image_id)
    if upload is None or upload.upload_id != upload_id:
        image = session.get(Image, image_id)
        if image is None or image.deleted:
            raise Gone(f"Image {image_id} was deleted during the upload.")
        raise Conflict(f"The upload of image {image_id} was given up (its lease expired).")
    return upload


def renew_lease(session: Session, image_id: str, upload_id: str, lease_seconds: int) -> None:
    upload = _claimed(session, image_id, upload_id)
    upload.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)


def renew_leases(session: Session, upload_ids: list[str], lease_seconds: int) -> None:
    """Renew every upload of ``upload_ids`` still in progress (those given up meanwhile
    are not: their replica hears of it when it finishes)."""
    if upload_ids:
        session.execute(
            update(ImageUpload)
            .where(ImageUpload.upload_id.in_(upload_ids))
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )


def finish_upload(session: Session, image_id: str, upload_id: str, result: dict) -> None:
    """saving → active with the size, hashes and location the store computed."""
    _claimed(session, image_id, upload_id)
    if result["location"] is None:
        raise BadRequest("An upload must end with a location.")
    record_data(session, image_id, "saving", result, [result])


def abort_upload(
    session: Session, image_id: str, upload_id: str, conf=None, reason: str | None = None
) -> bool:
    """saving → queued (a stage or an import goes back its own way:
    services/registry/imports.py); False when the upload was not (any more) this one's."""
    result = session.execute(
        delete(ImageUpload).where(
            ImageUpload.image_id == image_id, ImageUpload.upload_id == upload_id
        )
    )
    if result.rowcount != 1:
        return False
    image = session.get(Image, image_id)
    copying = image is not None and session.get(Task, upload_id) is not None  # copy-image
    if image is not None and (image.status in ("uploading", "importing") or copying):
        imports.give_back(session, conf, image, upload_id, reason)
        return True
    session.execute(
        update(Image)
        .where(Image.id == image_id, Image.status == "saving")
        .values(status="queued", updated_at=utcnow())
    )
    return True


def any_expired(connection: Connection) -> bool:
    """Whether any lease has expired: the registry's one-second check asks this on a plain
    connection first (no ORM session to build and commit when, as nearly always, none
    has)."""
    found = select(ImageUpload.image_id).where(ImageUpload.lease_expires_at < utcnow()).limit(1)
    return connection.execute(found).first() is not None


def expired_uploads(session: Session, conf=None) -> list[dict]:
    """Give up every upload (and stage and import) whose lease has expired; returns
    them, for data clean-up (``staged``: the staging area holds data of it too)."""
    expired = list(
        session.scalars(
            select(ImageUpload)
            .where(ImageUpload.lease_expires_at < utcnow())
            .with_for_update(skip_locked=True)
        )
    )
    given_up = []
    for upload in expired:
        task = session.get(Task, upload.upload_id)
        staged = upload.store == imports.STAGING_STORE or task is not None
        stores = (json.loads(task.input or "{}").get("backend") if task else None) or [upload.store]
        if abort_upload(session, upload.image_id, upload.upload_id, conf):
            image = session.get(Image, upload.image_id)
            held = {
                json.loads(loc.meta_data or "{}").get("store")
                for loc in (image.locations if image is not None else [])
                if loc.status == "active"
            }
            given_up.append(
                {
                    "image_id": upload.image_id,
                    "upload_id": upload.upload_id,
                    "store": upload.store,
                    "staged": staged,
                    # an import to several stores: its partial data in each, and the
                    # copies it completed but never recorded (no location holds them)
                    "stores": stores,
                    "leftovers": [s for s in stores if task is not None and s not in held],
                }
            )
    return given_up
