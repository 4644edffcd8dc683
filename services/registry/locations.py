"""Changing an image's locations through PATCH (``/locations`` paths), as Glance does
when ``show_multiple_locations`` is on: adding a location to a queued image makes it
active with the size the store measured; an active image can gain and lose locations
but never its last one."""

from __future__ import annotations

import json

from services.common.context import RequestContext
from services.common.contracts import ImageChange
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.registry.access import authorize, image_target
from services.registry.models import Image, ImageLocation, utcnow
from services.registry.quotas import check_quota


def _position(path: list[str], count: int, adding: bool) -> int:
    index = path[1] if len(path) > 1 else "-"
    if index == "-":
        return count if adding else count - 1
    try:
        pos = int(index)
    except ValueError:
        raise BadRequest(f"Invalid location index: {index}") from None
    if not 0 <= pos <= (count if adding else count - 1):
        raise BadRequest(
            f"Invalid position {pos} for {'adding' if adding else 'removing'} a location."
        )
    return pos


def change_locations(
    ctx: RequestContext, image: Image, change: ImageChange, conf
) -> tuple[list[str], dict | None]:
    """Apply one ``/locations`` change. Returns the URLs of removed locations and, when
    a queued image got its first location, the values it becomes active with: the
    caller moves it ``queued → active`` by compare-and-set once the rest is flushed, so
    a concurrent upload that made it ``saving`` meanwhile wins (409 here)."""
    if not conf.show_multiple_locations:
        raise Forbidden("It's not allowed to update locations if locations are invisible.")
    ctx.can(
        "delete_image_location" if change.op == "remove" else "set_image_location",
        image_target(ctx, image),
    )
    active = [loc for loc in image.locations if loc.status == "active"]
    if change.op == "replace":
        raise BadRequest(
            "Replacing the whole locations list is not supported; add and "
            "remove locations one by one."
        )
    if change.op == "remove":
        if image.status != "active":
            raise Conflict(
                f"It's not allowed to remove locations if image status is {image.status}."
            )
        if len(active) == 1:
            raise Forbidden("Cannot remove last location in the image.")
        gone = active[_position(change.path, len(active), adding=False)]
        gone.status = "deleted"
        return [gone.value], None
    value = change.value
    if image.status not in ("queued", "active"):
        raise Conflict(f"It's not allowed to add locations if image status is {image.status}.")
    if any(loc.value == value["url"] for loc in active):
        raise BadRequest(f"The location {value['url']} is already present.")
    check_quota("image locations", len(active) + 1, conf.image_location_quota)
    _position(change.path, len(active), adding=True)
    image.locations.append(
        ImageLocation(
            value=value["url"],
            status="active",
            meta_data=json.dumps(value.get("metadata") or {}),
            created_at=utcnow(),
        )
    )
    if image.status != "queued":
        return [], None
    validation = value.get("validation_data") or {}
    return [], {
        "size": change.size,
        "checksum": validation.get("checksum"),
        "os_hash_algo": validation.get("os_hash_algo"),
        "os_hash_value": validation.get("os_hash_value"),
    }


def delete_from_store(session, ctx: RequestContext, image_id: str, store_id: str) -> str:
    """``DELETE /v2/stores/{store}/{image}`` (Glance's ``delete_from_store``): remove the
    image's location in store ``store_id``; the URL removed (its data is the store
    service's to delete). 409 unless active, 403 for its only location, 404 when the
    image has none in that store."""
    from services.registry.images import get_visible  # images.py imports this module

    image = get_visible(session, ctx, image_id)
    authorize(session, ctx, "get_image_location", image)
    authorize(session, ctx, "delete_image_location", image)
    if image.status != "active":
        raise Conflict(
            "It's not allowed to remove image data from store if image status is not 'active'"
        )
    active = [loc for loc in image.locations if loc.status == "active"]
    if len(active) == 1:
        raise Forbidden(
            "Cannot delete image data from the only store containing it. "
            "Consider deleting the image instead."
        )
    for loc in active:
        if json.loads(loc.meta_data or "{}").get("store") == store_id:
            loc.status = "deleted"
            return loc.value
    raise NotFound(f"Image {image_id} is not stored in store {store_id}.")
