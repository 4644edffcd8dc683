"""The sort order of the registry's small lists (tasks, metadef namespaces and tags),
checked the same way for each: Glance's ``sort_key`` among the list's own keys (default
``created_at``) and ``sort_dir`` ``asc`` or ``desc`` (default ``desc``), anything else a
400 in Glance's words. The image list has a contract of its own (ListQuery)."""

from __future__ import annotations

from collections.abc import Collection

from services.common.errors import BadRequest


def sort_order(query: dict, sort_keys: Collection[str]) -> tuple[str, str]:
    """(sort key, sort direction) of a list ``query``; ``sort_keys``: those it accepts."""
    sort_key = query.get("sort_key") or "created_at"
    sort_dir = query.get("sort_dir") or "desc"
    if sort_key not in sort_keys:
        raise BadRequest(f"Invalid sort key: {sort_key}")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {sort_dir}")
    return sort_key, sort_dir
