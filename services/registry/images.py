"""Image records: create, read, change, tag, delete and status compare-and-set.

Plain functions over a SQLAlchemy session; the registry service wraps each call in one
transaction (services/registry/dependencies.py)."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Connection, delete, update
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.contracts import ImageChange, NewImage
from services.common.errors import Conflict, Duplicate, Forbidden, NotFound
from services.common.image_attributes import check_format_change, is_attribute
from services.common.property_protections import NO_PROTECTIONS, PropertyRules
from services.common.states import check_image_transition
from services.registry import access, locations, scrubbing, unified_limits
from services.registry.models import (
    Image,
    ImageLocation,
    ImageMember,
    ImageProperty,
    ImageTag,
    ImageUpload,
    utcnow,
)
from services.registry.protections import check_new_properties, sees
from services.registry.quotas import check_quota
from services.registry.views import image_with_children, record_of


def _check_visible(session: Session, ctx: RequestContext, image, image_id: str) -> None:
    """An image the caller may not see is not found (not forbidden), as in Glance."""
    if image is None or image.deleted:
        raise NotFound(f"No image found with ID {image_id}")
    member = access.shares_with_caller(session, ctx, image)
    if not access.can_see(ctx, image, member) or not ctx.may(
        "get_image", access.image_target(ctx, image, member)
    ):
        raise NotFound(f"No image found with ID {image_id}")


def get_visible(session: Session, ctx: RequestContext, image_id: str) -> Image:
    """The ORM image (for changing it), if it exists and the caller may see it."""
    image = session.get(Image, image_id)
    _check_visible(session, ctx, image, image_id)
    return image


def get_visible_record(
    db: Session | Connection, ctx: RequestContext, image_id: str, action: str | None = None
) -> dict:
    """The image's record (for reading it), in one query, if it exists and the caller
    may see it (and, with ``action``, is allowed that action on it too). ``db`` is a
    session or a plain connection (Transactions.read)."""
    rows = image_with_children(db, image_id)
    row = rows[0] if rows else None
    _check_visible(db, ctx, row, image_id)
    if action is not None:
        access.authorize(db, ctx, action, row)
    return record_of(rows)


def create_image(
    session: Session,
    ctx: RequestContext,
    conf,
    new: NewImage,
    rules: PropertyRules = NO_PROTECTIONS,
) -> Image:
    attributes, properties = new.attributes, new.properties
    image_id = attributes.get("id") or str(uuid.uuid4())
    owner = attributes["owner"] if "owner" in attributes else ctx.project_id
    visibility = attributes.get("visibility") or "shared"
    ctx.can("add_image", {"project_id": ctx.project_id, "owner": owner, "visibility": visibility})
    if visibility == "public":
        ctx.can("publicize_image", {"project_id": owner, "owner": owner})
    elif visibility == "community":
        ctx.can("communitize_image", {"project_id": owner, "owner": owner})
    check_new_properties(rules, ctx, properties)
    if session.get(Image, image_id) is not None:
        raise Duplicate(f"Image with identifier {image_id} already exists!")
    tags = sorted(set(new.tags))
    check_quota("image properties", len(properties), conf.image_property_quota)
    check_quota("image tags", len(tags), conf.image_tag_quota)
    unified_limits.enforce(session, conf, ctx.project_id, {unified_limits.IMAGE_COUNT_TOTAL: 1})
    now = utcnow()
    image = Image(
        id=image_id,
        status="queued",
        created_at=now,
        updated_at=now,
        owner=owner,
        visibility=visibility,
        min_disk=attributes.get("min_disk") or 0,
        min_ram=attributes.get("min_ram") or 0,
        protected=bool(attributes.get("protected")),
        os_hidden=bool(attributes.get("os_hidden")),
        name=attributes.get("name"),
        disk_format=attributes.get("disk_format"),
        container_format=attributes.get("container_format"),
        properties=[ImageProperty(name=k, value=v) for k, v in properties.items()],
        tags=[ImageTag(value=t, created_at=now) for t in tags],
        locations=[],
    )
    session.add(image)
    session.flush()
    return image


def _set_tags(image: Image, tags: list[str], conf) -> None:
    wanted = sorted(set(tags))
    check_quota("image tags", len(wanted), conf.image_tag_quota)
    current = {t.value: t for t in image.tags}
    now = utcnow()
    image.tags = [current.get(t) or ImageTag(value=t, created_at=now) for t in wanted]


def apply_changes(
    session: Session,
    ctx: RequestContext,
    conf,
    image_id: str,
    changes: list[ImageChange],
    rules: PropertyRules = NO_PROTECTIONS,
) -> tuple[Image, list[str]]:
    """Apply checked changes (services/common/contracts.py) as Glance applies a
    JSON-patch, with the property protections ``rules`` (services/registry/protections.py);
    returns the image and the URLs of locations it removed (their data is to be
    deleted)."""
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "modify_image", image)
    props = {p.name: p for p in image.properties}
    removed: dict[str, ImageProperty] = {}  # rows to reuse if a later change sets them again
    removed_locations: list[str] = []
    activate_with = None
    for change in changes:
        op, name = change.op, change.name
        if name == "locations":
            gone, activation = locations.change_locations(ctx, image, change, conf)
            removed_locations += gone
            activate_with = activate_with or activation
            continue
        is_base = is_attribute(name)
        if op == "remove":
            if is_base:
                raise Forbidden(f"Property {name} may not be removed.")
            if not sees(rules, ctx, props, name):
                raise Conflict(f"Property {name} does not exist.")
            rules.check(name, "delete", ctx)
            removed[name] = props.pop(name)
            image.properties.remove(removed[name])
            continue
        value = change.value
        known = is_base or sees(rules, ctx, props, name)
        if op == "add" and change.json_schema_version == 4 and known:
            raise Conflict(f"Property {name} already present.")
        if op == "replace" and not known:
            raise Conflict(f"Property {name} does not exist.")
        if name == "tags":
            _set_tags(image, value, conf)
        elif is_base:
            check_format_change(name, image.status)
            access.check_new_attribute(ctx, image, name, value)
            setattr(image, name, value)
        else:
            # one the caller cannot read is new to it: Glance lets a creator overwrite it
            rules.check(name, "update" if known else "create", ctx)
            if name not in props:
                props[name] = removed.pop(name, None) or ImageProperty(name=name)
                image.properties.append(props[name])
            props[name].value = value
    check_quota("image properties", len(props), conf.image_property_quota)
    image.updated_at = utcnow()
    session.flush()
    if activate_with is not None:  # a location given to a queued image makes it active
        change_status(session, image_id, "queued", "active", **activate_with)
        session.refresh(image)
    return image, removed_locations


def add_tag(session: Session, ctx: RequestContext, conf, image_id: str, tag: str) -> Image:
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "modify_image", image)
    if tag not in {t.value for t in image.tags}:
        _set_tags(image, [t.value for t in image.tags] + [tag], conf)
        image.updated_at = utcnow()
        session.flush()
    return image


def remove_tag(session: Session, ctx: RequestContext, image_id: str, tag: str) -> Image:
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "modify_image", image)
    kept = [t for t in image.tags if t.value != tag]
    if len(kept) == len(image.tags):
        raise NotFound(f"Tag {tag} not found on image {image_id}")
    image.tags = kept
    image.updated_at = utcnow()
    session.flush()
    return image


def change_status(session: Session, image_id: str, current: str, target: str, **values) -> None:
    """Compare-and-set: move the image from ``current`` to ``target`` in one UPDATE.
    Zero rows changed means someone else moved it first: a Conflict, never an
    overwrite."""
    check_image_transition(current, target)
    result = session.execute(
        update(Image)
        .where(Image.id == image_id, Image.status == current)
        .values(status=target, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"Image {image_id} is no longer {current}")


def record_data(
    session: Session,
    image_id: str,
    current: str | None,
    result: dict,
    copies: list[dict],
    lease_done: bool = True,
) -> None:
    """The data a store replica wrote is the image's: ``current → active`` with the size
    and hashes it computed (``current`` None: already active, as after a copy), one
    active location per copy ({location, metadata}), and the upload or import lease gone
    (unless ``lease_done`` is false: an import still writing to more stores)."""
    if current is not None:
        change_status(
            session,
            image_id,
            current,
            "active",
            size=result["size"],
            checksum=result["checksum"],
            os_hash_algo=result["os_hash_algo"],
            os_hash_value=result["os_hash_value"],
            virtual_size=result.get("virtual_size"),
            # image_conversion stored another format (services/store/conversion.py)
            **({"disk_format": result["disk_format"]} if result.get("disk_format") else {}),
        )
    for copy in copies:
        session.add(
            ImageLocation(
                image_id=image_id,
                value=copy["location"],
                meta_data=json.dumps(copy.get("metadata") or {}),
                status="active",
                created_at=utcnow(),
            )
        )
    if lease_done:
        session.execute(delete(ImageUpload).where(ImageUpload.image_id == image_id))


def delete_image(
    session: Session, ctx: RequestContext, image_id: str, delayed: bool = False
) -> tuple[str, list[str]]:
    """Returns the image's new status and the locations whose data is to be deleted now:
    none when delayed delete (``delayed``) keeps the data of a ``pending_delete`` image
    for the scrubber (services/registry/scrubbing.py)."""
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "delete_image", image)
    if image.protected:
        raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
    if delayed and scrubbing.mark_pending_delete(session, image):
        return "pending_delete", []
    now = utcnow()
    change_status(session, image_id, image.status, "deleted", deleted=True, deleted_at=now)
    session.execute(delete(ImageTag).where(ImageTag.image_id == image_id))
    session.execute(delete(ImageProperty).where(ImageProperty.image_id == image_id))
    session.execute(delete(ImageMember).where(ImageMember.image_id == image_id))
    session.execute(delete(ImageUpload).where(ImageUpload.image_id == image_id))
    return "deleted", [loc.value for loc in image.locations]


def set_active(session: Session, ctx: RequestContext, image_id: str, active: bool) -> Image:
    """Deactivate (active → deactivated) or reactivate (deactivated → active); asking
    for the status the image already has is not an error, any other status is a 403
    (as Glance's domain answers)."""
    image = get_visible(session, ctx, image_id)
    action, current, target = (
        ("reactivate", "deactivated", "active")
        if active
        else ("deactivate", "active", "deactivated")
    )
    access.authorize(session, ctx, action, image)
    if image.status == target:
        return image
    if image.status != current:
        raise Forbidden(f"Not allowed to {action} image in status '{image.status}'")
    change_status(session, image_id, current, target)
    return image
