"""``GET /v2/images`` query parameters, checked as Glance checks them and turned into
the plain query the registry runs (services/registry/listing.py)."""

from __future__ import annotations

import csv
from datetime import datetime

from werkzeug.datastructures import MultiDict

from services.common.errors import BadRequest

SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
VISIBILITIES = ("community", "public", "private", "shared", "all")
MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
IN_FIELDS = ("id", "name", "status", "container_format", "disk_format")
EXACT_FIELDS = ("owner",)
TIME_FIELDS = ("created_at", "updated_at")
NOT_FILTERS = (
    "limit",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "member_status",
    "tag",
    "visibility",
    "os_hidden",
    "size_min",
    "size_max",
    "protected",
)


def _single(params: MultiDict, key: str) -> str | None:
    values = params.getlist(key)
    if len(values) > 1:
        raise BadRequest(f"The '{key}' parameter may be given only once.")
    return values[0] if values else None


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, maximum)


def _sort(params: MultiDict) -> list[list[str]]:
    def key(k: str) -> str:
        k = k.strip()
        if k not in SORT_KEYS:
            raise BadRequest(
                f"Invalid sort key: {k}. It must be one of the following: {', '.join(SORT_KEYS)}."
            )
        return k

    def direction(d: str) -> str:
        d = d.strip()
        if d not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {d}")
        return d

    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for item in ",".join(params.getlist("sort")).split(","):
            k, _, d = item.partition(":")
            pairs.append([key(k), direction(d or "desc")])
        return pairs
    keys = [key(k) for k in params.getlist("sort_key")] or ["created_at"]
    dirs = [direction(d) for d in params.getlist("sort_dir")] or ["desc"]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequest("Number of sort dirs does not match the number of sort keys")
    if len(dirs) == 1:
        dirs = dirs * len(keys)
    return [list(p) for p in zip(keys, dirs, strict=True)]


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value '{raw}' for the '{name}' filter: use true or false.")


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(
            f"Invalid value '{raw}' for the '{name}' filter: it must be an integer."
        ) from None


def _in_values(raw: str) -> list[str]:
    """``in:a,b,"c,d"``: a comma separated list; double quotes protect commas."""
    try:
        values = next(csv.reader([raw], skipinitialspace=True))
    except (csv.Error, StopIteration):
        raise BadRequest(f"Invalid 'in' list: {raw}") from None
    if not values or any(v == "" for v in values):
        raise BadRequest(f"Invalid 'in' list: {raw}")
    return values


def _check_time(name: str, raw: str) -> str:
    try:
        datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"Unable to filter on '{name}': '{raw}' is not an ISO 8601 time, "
            f"e.g. 2026-01-31T12:00:00Z."
        ) from None
    return raw


def _field_filter(name: str, raw: str) -> dict:
    """One filter on a base field; ``op:value`` where the field takes operators."""
    if name in TIME_FIELDS:
        op, sep, value = raw.partition(":")
        if not sep or op not in OPERATORS:
            raise BadRequest(
                f"Unable to filter on '{name}' with '{raw}': use one of the "
                f"operators {', '.join(OPERATORS)}, e.g. "
                f"{name}=gte:2026-01-31T12:00:00Z."
            )
        return {"field": name, "op": op, "value": _check_time(name, value)}
    if raw.startswith("in:"):
        return {"field": name, "op": "in", "value": _in_values(raw[3:])}
    if raw.startswith("eq:"):
        raw = raw[3:]
    return {"field": name, "op": "eq", "value": raw}


def parse_list_query(args: MultiDict, conf) -> dict:
    params = MultiDict(args)
    visibility = _single(params, "visibility")
    if visibility is not None and visibility not in VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = _single(params, "member_status") or "accepted"
    if member_status not in MEMBER_STATUSES:
        raise BadRequest(f"Invalid status: {member_status}")
    if "changes-since" in params:
        raise BadRequest('The "changes-since" filter is no longer available on v2.')
    os_hidden = _single(params, "os_hidden")
    query = {
        "limit": _limit(_single(params, "limit"), conf.limit_param_default, conf.api_limit_max),
        "marker": _single(params, "marker"),
        "sort": _sort(params),
        "visibility": visibility,
        "member_status": member_status,
        "os_hidden": _bool("os_hidden", os_hidden) if os_hidden is not None else False,
        "tags": [t.strip() for t in params.getlist("tag")],
        "filters": [],
        "properties": {},
    }
    filters = query["filters"]
    for name, op in (("size_min", "gte"), ("size_max", "lte")):
        raw = _single(params, name)
        if raw is not None:
            filters.append({"field": "size", "op": op, "value": _int(name, raw)})
    protected = _single(params, "protected")
    if protected is not None:
        filters.append({"field": "protected", "op": "eq", "value": _bool("protected", protected)})
    for name in params:
        if name in NOT_FILTERS:
            continue
        raw = _single(params, name)
        if name in IN_FIELDS or name in TIME_FIELDS or name in EXACT_FIELDS:
            filters.append(
                _field_filter(name, raw)
                if name not in EXACT_FIELDS
                else {"field": name, "op": "eq", "value": raw}
            )
        else:
            query["properties"][name] = raw
    return query
