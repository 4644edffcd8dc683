"""The image list: filters, visibility, sorting and keyset pagination in one query.

The gateway parses the request into a ListQuery (services/common/contracts.py), which
the registry checks again on arrival; this module turns it into SQL."""

from __future__ import annotations

import operator
from datetime import UTC, datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.contracts import TIME_FIELDS, ListQuery, parse_time
from services.common.errors import BadRequest, NotFound
from services.registry.access import member_condition, visible_condition
from services.registry.images import get_visible
from services.registry.models import Image, ImageProperty, ImageTag

# Nullable sort keys are compared through COALESCE so that keyset pagination never
# compares with NULL (NULLs sort first, as they do in SQLite and MySQL).
SORT_COLUMNS = {
    "name": func.coalesce(Image.name, ""),
    "status": Image.status,
    "container_format": func.coalesce(Image.container_format, ""),
    "disk_format": func.coalesce(Image.disk_format, ""),
    "size": func.coalesce(Image.size, -1),
    "id": Image.id,
    "created_at": Image.created_at,
    "updated_at": func.coalesce(Image.updated_at, Image.created_at),
}

FILTER_COLUMNS = {
    "id": Image.id,
    "name": Image.name,
    "status": Image.status,
    "owner": Image.owner,
    "disk_format": Image.disk_format,
    "container_format": Image.container_format,
    "size": Image.size,
    "protected": Image.protected,
    "min_ram": Image.min_ram,
    "min_disk": Image.min_disk,
    "visibility": Image.visibility,
    "created_at": Image.created_at,
    "updated_at": Image.updated_at,
}


def _parse_time(value: str) -> datetime:
    """Naive UTC, as the columns store it."""
    parsed = parse_time(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


COMPARISONS = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _compare(column, op: str, value):
    if op == "in":
        return column.in_(value)
    return COMPARISONS[op](column, value)


def _conditions(ctx: RequestContext, query: ListQuery) -> list:
    conds = [Image.deleted.is_(False)]
    visible = visible_condition(ctx, query.visibility, query.member_status)
    if visible is not None:
        conds.append(visible)
    if query.member_status != "accepted" and not ctx.is_admin and query.visibility in (None, "all"):
        # asking for pending/rejected/all shares widens the default list to those shares
        conds[-1] = or_(
            conds[-1],
            and_(
                Image.visibility == "shared",
                member_condition(ctx.project_id, query.member_status),
            ),
        )
    if query.os_hidden is not None:
        conds.append(Image.os_hidden.is_(query.os_hidden))
    for flt in query.filters:
        field, op, value = flt.field, flt.op, flt.value
        if field in TIME_FIELDS:
            value = [_parse_time(v) for v in value] if op == "in" else _parse_time(value)
        conds.append(_compare(FILTER_COLUMNS[field], op, value))
    for name, value in query.properties.items():
        conds.append(
            exists(
                select(ImageProperty.id).where(
                    ImageProperty.image_id == Image.id,
                    ImageProperty.name == name,
                    ImageProperty.value == value,
                )
            )
        )
    for tag in query.tags:
        conds.append(
            exists(select(ImageTag.id).where(ImageTag.image_id == Image.id, ImageTag.value == tag))
        )
    return conds


def _full_sort(sort: list[list[str]]) -> list[tuple[str, str]]:
    """The requested sort plus created_at and id, so the order is total."""
    keys = [(k, d) for k, d in sort]
    names = {k for k, _ in keys}
    for extra in ("created_at", "id"):
        if extra not in names:
            keys.append((extra, keys[-1][1] if keys else "desc"))
    return keys


def _after_marker(sort: list[tuple[str, str]], marker_values: list):
    """Keyset condition: rows strictly after the marker row in the given order."""
    alternatives = []
    for i, (key, direction) in enumerate(sort):
        equal_prefix = [SORT_COLUMNS[k] == marker_values[j] for j, (k, _) in enumerate(sort[:i])]
        column = SORT_COLUMNS[key]
        beyond = column > marker_values[i] if direction == "asc" else column < marker_values[i]
        alternatives.append(and_(*equal_prefix, beyond))
    return or_(*alternatives)


def list_images(session: Session, ctx: RequestContext, query: ListQuery) -> tuple[list, bool]:
    """One page of image rows and whether more follow."""
    ctx.can("get_images", {"project_id": ctx.project_id})
    sort = _full_sort(query.sort)
    conds = _conditions(ctx, query)
    marker_id = query.marker
    if marker_id:
        try:
            get_visible(session, ctx, marker_id)
        except NotFound:
            raise BadRequest(f"marker {marker_id} could not be found.") from None
        values = session.execute(
            select(*[SORT_COLUMNS[k] for k, _ in sort]).where(Image.id == marker_id)
        ).one()
        conds.append(_after_marker(sort, list(values)))
    order = [SORT_COLUMNS[k].asc() if d == "asc" else SORT_COLUMNS[k].desc() for k, d in sort]
    limit = query.limit
    stmt = select(Image.__table__).where(*conds).order_by(*order).limit(limit + 1)
    rows = list(session.connection().execute(stmt))
    return rows[:limit], len(rows) > limit
