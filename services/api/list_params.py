"""``GET /v2/images`` query parameters, checked as Glance checks them and turned into
the plain query the registry runs (services/registry/listing.py)."""

from __future__ import annotations

import csv

from werkzeug.datastructures import MultiDict

from services.common.contracts import (
    BIGINT_MAX,
    FILTER_FIELDS,
    LIST_VISIBILITIES,
    MEMBER_STATUSES,
    SORT_KEYS,
    TIME_FIELDS,
    TIME_OPERATORS,
    Filter,
    ListQuery,
    parse_time,
)
from services.common.errors import BadRequest

IN_FIELDS = tuple(name for name, (ops, _) in FILTER_FIELDS.items() if "in" in ops)
EXACT_FIELDS = ("owner",)
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
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"Invalid value '{raw}' for the '{name}' filter: it must be an integer."
        ) from None
    if not 0 <= value <= BIGINT_MAX:
        raise BadRequest(f"The '{name}' filter must be between 0 and {BIGINT_MAX}.")
    return value


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
        parse_time(raw)
    except BadRequest:
        raise BadRequest(
            f"Unable to filter on '{name}': '{raw}' is not an ISO 8601 time, "
            f"e.g. 2026-01-31T12:00:00Z."
        ) from None
    return raw


def _field_filter(name: str, raw: str) -> Filter:
    """One filter on a base field; ``op:value`` where the field takes operators."""
    if name in TIME_FIELDS:
        op, sep, value = raw.partition(":")
        if not sep or op not in TIME_OPERATORS:
            raise BadRequest(
                f"Unable to filter on '{name}' with '{raw}': use one of the "
                f"operators {', '.join(TIME_OPERATORS)}, e.g. "
                f"{name}=gte:2026-01-31T12:00:00Z."
            )
        return Filter(name, op, _check_time(name, value))
    if raw.startswith("in:"):
        return Filter(name, "in", _in_values(raw[3:]))
    if raw.startswith("eq:"):
        raw = raw[3:]
    return Filter(name, "eq", raw)


def parse_list_query(args: MultiDict, conf) -> ListQuery:
    params = MultiDict(args)
    visibility = _single(params, "visibility")
    if visibility is not None and visibility not in LIST_VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = _single(params, "member_status") or "accepted"
    if member_status not in MEMBER_STATUSES:
        raise BadRequest(f"Invalid status: {member_status}")
    if "changes-since" in params:
        raise BadRequest('The "changes-since" filter is no longer available on v2.')
    os_hidden = _single(params, "os_hidden")
    filters = []
    for name, op in (("size_min", "gte"), ("size_max", "lte")):
        raw = _single(params, name)
        if raw is not None:
            filters.append(Filter("size", op, _int(name, raw)))
    protected = _single(params, "protected")
    if protected is not None:
        filters.append(Filter("protected", "eq", _bool("protected", protected)))
    properties = {}
    for name in params:
        if name in NOT_FILTERS:
            continue
        raw = _single(params, name)
        if name in EXACT_FIELDS:
            filters.append(Filter(name, "eq", raw))
        elif name in IN_FIELDS or name in TIME_FIELDS:
            filters.append(_field_filter(name, raw))
        else:
            properties[name] = raw
    query = ListQuery(
        limit=_limit(_single(params, "limit"), conf.limit_param_default, conf.api_limit_max),
        sort=_sort(params),
        marker=_single(params, "marker"),
        visibility=visibility,
        member_status=member_status,
        os_hidden=_bool("os_hidden", os_hidden) if os_hidden is not None else False,
        tags=[t.strip() for t in params.getlist("tag")],
        filters=filters,
        properties=properties,
    )
    query.check()
    return query
