"""Image records: the JSON that crosses RPC (timestamps in Glance's format).

Reads go through SQLAlchemy Core (a row query and one query per child table for a whole
page of images) rather than ORM loading: the image read path is the hottest in the
service and ORM identity-map work cost several times more CPU than the queries."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, bindparam, literal, null, select, text, true, union_all
from sqlalchemy.orm import Session

from services.common.image_attributes import COLUMNS
from services.registry.models import Image, ImageLocation, ImageProperty, ImageTag

IMAGES = Image.__table__
TIMESTAMPS = ("created_at", "updated_at")
# The columns a record copies as they are (timestamps are formatted).
COPIED = tuple(name for name in COLUMNS if name not in TIMESTAMPS)


def isotime(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def image_record(image, properties: dict, tags: list[str], locations: list[dict]) -> dict:
    """The record of an image row (a Core Row or an ORM Image) and its children."""
    record = {key: getattr(image, key) for key in COPIED}
    record["protected"] = bool(record["protected"])
    record["os_hidden"] = bool(record["os_hidden"])
    for key in TIMESTAMPS:
        record[key] = isotime(getattr(image, key))
    record["tags"] = sorted(tags)
    record["properties"] = properties
    record["locations"] = locations
    return record


def _location(value: str, meta_data: str | None) -> dict:
    return {"url": value, "metadata": json.loads(meta_data or "{}")}


def orm_record(image: Image) -> dict:
    """The record of an ORM image whose children are loaded (after a write)."""
    return image_record(
        image,
        {p.name: p.value for p in image.properties},
        [t.value for t in image.tags],
        [_location(loc.value, loc.meta_data) for loc in image.locations if loc.status == "active"],
    )


PROPS, TAGS, LOCS = (ImageProperty.__table__, ImageTag.__table__, ImageLocation.__table__)
_IDS = bindparam("ids", expanding=True)
# The children of a page of images in one round trip: (kind, image_id, a, b, order).
CHILDREN = union_all(
    select(literal("p"), PROPS.c.image_id, PROPS.c.name, PROPS.c.value, PROPS.c.id).where(
        PROPS.c.image_id.in_(_IDS)
    ),
    select(literal("t"), TAGS.c.image_id, TAGS.c.value, null(), TAGS.c.id).where(
        TAGS.c.image_id.in_(_IDS)
    ),
    select(literal("l"), LOCS.c.image_id, LOCS.c.value, LOCS.c.meta_data, LOCS.c.id).where(
        LOCS.c.image_id.in_(_IDS), LOCS.c.status == "active"
    ),
).order_by(text("5"))


# One image and its children in one query (a show): the image's columns on every row,
# with one child per row (or none, for an image without children).
_ONE = bindparam("image_id")
_CHILDREN_OF_ONE = union_all(
    select(
        literal("p").label("child_kind"),
        PROPS.c.name.label("child_a"),
        PROPS.c.value.label("child_b"),
        PROPS.c.id.label("child_order"),
    ).where(PROPS.c.image_id == _ONE),
    select(literal("t"), TAGS.c.value, null(), TAGS.c.id).where(TAGS.c.image_id == _ONE),
    select(literal("l"), LOCS.c.value, LOCS.c.meta_data, LOCS.c.id).where(
        LOCS.c.image_id == _ONE, LOCS.c.status == "active"
    ),
).subquery("children")
IMAGE_WITH_CHILDREN = (
    select(IMAGES, _CHILDREN_OF_ONE)
    .select_from(IMAGES.outerjoin(_CHILDREN_OF_ONE, true()))
    .where(IMAGES.c.id == _ONE)
    .order_by(_CHILDREN_OF_ONE.c.child_order)
)


def image_with_children(db: Session | Connection, image_id: str) -> list:
    """The rows of IMAGE_WITH_CHILDREN for one image (empty if there is no such image)."""
    return db.execute(IMAGE_WITH_CHILDREN, {"image_id": image_id}).all()


def record_of(rows: list) -> dict:
    """The record of an image from its IMAGE_WITH_CHILDREN rows."""
    props: dict[str, str] = {}
    tags: list[str] = []
    locations: list[dict] = []
    for row in rows:
        kind = row.child_kind
        if kind == "p":
            props[row.child_a] = row.child_b
        elif kind == "t":
            tags.append(row.child_a)
        elif kind == "l":
            locations.append(_location(row.child_a, row.child_b))
    return image_record(rows[0], props, tags, locations)


def records(session: Session, rows: list) -> list[dict]:
    """Records of image rows; one more query fetches the children of all of them."""
    if not rows:
        return []
    props: dict[str, dict] = defaultdict(dict)
    tags: dict[str, list] = defaultdict(list)
    locations: dict[str, list] = defaultdict(list)
    for kind, image_id, a, b, _order in session.connection().execute(
        CHILDREN, {"ids": [row.id for row in rows]}
    ):
        if kind == "p":
            props[image_id][a] = b
        elif kind == "t":
            tags[image_id].append(a)
        else:
            locations[image_id].append(_location(a, b))
    return [image_record(row, props[row.id], tags[row.id], locations[row.id]) for row in rows]
