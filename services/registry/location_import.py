"""Image API 2.17 locations as the registry sees them (Glance 33's ``add_location`` and
``get_locations``).

``POST /v2/images/{id}/locations`` takes the import lock of a queued image, creates a
``location_import`` task and moves the image to ``importing`` under an upload lease, as
an import does (services/registry/imports.py); a store replica then reads the data once
(``[DEFAULT] do_secure_hash``) and ends the task with ``finish_import`` (the location
is the URL itself) or ``fail_import`` (the image is queued again)."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from services.common.config import enabled_backends, store_names
from services.common.context import RequestContext
from services.common.errors import BadRequest, Conflict, Forbidden
from services.registry import access, imports, tasks
from services.registry.images import change_status, get_visible
from services.registry.models import Task
from services.registry.views import orm_record


def check_validation_data(validation_data, hashing_algorithm: str) -> dict:
    """Glance's ``_validate_hashing_data`` (400s in Glance's words)."""
    if validation_data is None:
        return {}
    if not isinstance(validation_data, dict):
        raise BadRequest("validation_data must be an object")
    if "os_hash_value" in validation_data:
        try:
            value = bytearray.fromhex(validation_data["os_hash_value"])
        except (TypeError, ValueError):
            raise BadRequest(
                f"os_hash_value ({validation_data['os_hash_value']}) is not a valid "
                f"hexadecimal value"
            ) from None
        algo = validation_data.get("os_hash_algo", hashing_algorithm)
        try:
            want = hashlib.new(algo).digest_size
        except (TypeError, ValueError):
            raise BadRequest(f"os_hash_algo ({algo}) is not a known hash algorithm") from None
        if len(value) != want:
            raise BadRequest(
                f"os_hash_value: ({validation_data['os_hash_value']}) is not the correct "
                f"size for ({algo}) (should be ({want}) bytes)"
            )
    return validation_data


def _http_store(conf, url: str) -> bool:
    """Glance's ``is_http_store_configured``."""
    stores = set(store_names(conf)) | set(enabled_backends(conf).values())
    return url.startswith(("http://", "https://")) and "http" in stores


def begin_location_import(
    session: Session,
    ctx: RequestContext,
    conf,
    image_id: str,
    url: str,
    validation_data: dict,
    lease_seconds: int,
) -> Task:
    image = get_visible(session, ctx, image_id)
    if image.status != "queued":
        raise Conflict(f"It's not allowed to add locations if image status is {image.status}.")
    access.authorize(session, ctx, "add_image_location", image)
    if "service" not in ctx.roles and not _http_store(conf, url):
        raise Forbidden("http store must be enabled to use location API by normal user.")
    imports._check_lock(session, image)
    task_input = {"image_id": image_id, "loc_url": url, "validation_data": validation_data}
    task = tasks.new_task(session, ctx, "location_import", task_input, image_id)
    imports._set_property(image, imports.LOCK, task.id)
    session.flush()  # a concurrent lock taken meanwhile fails here (unique key): 409
    change_status(session, image_id, "queued", "importing")
    imports._lease(session, image_id, task.id, "http", lease_seconds)
    return task


def image_locations(session: Session, ctx: RequestContext, image_id: str) -> list[dict]:
    """``GET /v2/images/{id}/locations``: ``fetch_image_location`` (service role)."""
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "fetch_image_location", image)
    return orm_record(image)["locations"]
