"""What crosses the seam between the gateway and the registry for images: a new image, a
list query and a set of changes. Each is a dataclass the gateway builds from an HTTP
request and sends as JSON (``to_wire``); the registry rebuilds it with ``from_wire``,
which checks it again, so the registry never trusts the gateway's parsing and its tests
never need the gateway."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime

from services.common.errors import BadRequest
from services.common.image_attributes import (
    BY_NAME,
    CREATE_ATTRIBUTES,
    LOCATIONS,
    NAME_MAX,
    UUID_RE,
    check_property,
    check_writable,
    is_attribute,
)
from services.common.image_schema import SchemaValidator

# --- a new image


@dataclass(frozen=True)
class NewImage:
    """A create body, sorted: the image's own attributes, extra properties and tags."""

    attributes: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)
    tags: list = field(default_factory=list)

    @classmethod
    def from_body(cls, body: dict, validator: SchemaValidator) -> NewImage:
        """A create body as a client sends it (``POST /v2/images``)."""
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        body = dict(body)
        tags = body.pop("tags", [])
        attributes = {k: body.pop(k) for k in CREATE_ATTRIBUTES if k in body}
        new = cls(attributes, body, tags)
        new.check(validator)
        return new

    def check(self, validator: SchemaValidator) -> None:
        if not isinstance(self.attributes, dict) or not isinstance(self.properties, dict):
            raise BadRequest("A new image's attributes and properties must be objects.")
        for name in self.attributes:
            if name not in CREATE_ATTRIBUTES:
                raise BadRequest(f"'{name}' is not an attribute of a new image.")
        for name, value in self.properties.items():
            check_writable(name, creating=True)
            if is_attribute(name):
                raise BadRequest(f"'{name}' is an attribute, not an extra property.")
            check_property(name, value)
        validator.validate({**self.attributes, **self.properties, "tags": self.tags})
        image_id = self.attributes.get("id")
        if image_id is not None and not UUID_RE.fullmatch(image_id):
            raise BadRequest(
                f"Provided object does not match schema 'image': {image_id!r} "
                "is not an image identifier (a UUID)"
            )

    def to_wire(self) -> dict:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict, validator: SchemaValidator) -> NewImage:
        try:
            new = cls(**wire)
        except TypeError:
            raise BadRequest("Malformed new image.") from None
        new.check(validator)
        return new


# --- changes (PATCH /v2/images/{id})

OPERATIONS = ("add", "remove", "replace")
# Path depth per root and operation (1 unless listed): /locations/N for add and remove.
PATH_DEPTH = {"locations": {"add": 2, "remove": 2, "replace": 1}}
DRAFTS = (4, 10)  # json_schema_version: 4 is the older v2.0 patch media type


@dataclass(frozen=True)
class ImageChange:
    """One checked JSON-patch operation on an image.

    ``json_schema_version`` 4 (the v2.0 media type) makes ``add`` of an existing
    property a conflict. ``size`` is the data size the store measured for a location
    being added."""

    op: str
    path: tuple
    value: object = None
    json_schema_version: int = 10
    size: int | None = None

    @property
    def name(self) -> str:
        return self.path[0]

    def check(self, validator: SchemaValidator) -> None:
        if self.op not in OPERATIONS:
            raise BadRequest(
                f"Invalid operation: `{self.op}`. It must be one of the following: "
                f"{', '.join(OPERATIONS)}."
            )
        if self.json_schema_version not in DRAFTS:
            raise BadRequest(f"Unknown JSON-patch version {self.json_schema_version}.")
        if not self.path or not all(isinstance(p, str) for p in self.path):
            raise BadRequest("The path of a change must be a list of strings.")
        if len(self.path) != PATH_DEPTH.get(self.name, {}).get(self.op, 1):
            raise BadRequest(f"Invalid JSON pointer for this resource: '/{'/'.join(self.path)}'")
        check_writable(self.name)
        attribute = BY_NAME.get(self.name)
        if attribute is None:
            check_property(self.name, self.value, check_value=self.op != "remove")
        if self.op == "remove":
            return
        if attribute is not None and attribute.access == LOCATIONS and len(self.path) == 2:
            validator.validate({self.name: [self.value]})
        else:
            validator.validate({self.name: self.value})
        if self.size is not None and (not isinstance(self.size, int) or self.size < 0):
            raise BadRequest("A location's size must be a non-negative integer.")

    def to_wire(self) -> dict:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict, validator: SchemaValidator) -> ImageChange:
        try:
            change = cls(**{**wire, "path": tuple(wire["path"])})
        except (TypeError, KeyError):
            raise BadRequest("Malformed image change.") from None
        change.check(validator)
        return change


def changes_from_wire(wire, validator: SchemaValidator) -> list[ImageChange]:
    if not isinstance(wire, list):
        raise BadRequest("Changes must be a list.")
    return [ImageChange.from_wire(c, validator) for c in wire]


# --- the image list (GET /v2/images)

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
SORT_DIRS = ("asc", "desc")
LIST_VISIBILITIES = ("community", "public", "private", "shared", "all")
MEMBER_STATUSES = ("pending", "accepted", "rejected", "all")
TIME_OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
# Which operators each filterable field takes, and the Python type of its value.
FILTER_FIELDS: dict[str, tuple[tuple[str, ...], type]] = {
    "id": (("eq", "in"), str),
    "name": (("eq", "in"), str),
    "status": (("eq", "in"), str),
    "container_format": (("eq", "in"), str),
    "disk_format": (("eq", "in"), str),
    "owner": (("eq",), str),
    "size": (("gte", "lte"), int),
    "protected": (("eq",), bool),
    "min_ram": (("eq",), int),  # the v1 API's filters (services/api/v1.py)
    "min_disk": (("eq",), int),
    "visibility": (("eq", "in"), str),
    "created_at": (TIME_OPERATORS, str),
    "updated_at": (TIME_OPERATORS, str),
}
TIME_FIELDS = ("created_at", "updated_at")
BIGINT_MAX = 2**63 - 1  # the size column's range


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset allowed)."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise BadRequest(
            f"Invalid timestamp '{value}'; use ISO 8601, e.g. 2026-01-31T12:00:00Z."
        ) from None


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: object

    def check(self) -> None:
        if self.field not in FILTER_FIELDS:
            raise BadRequest(f"Unable to filter on '{self.field}'.")
        ops, kind = FILTER_FIELDS[self.field]
        if self.op not in ops:
            raise BadRequest(f"Unable to filter on '{self.field}' with operator '{self.op}'.")
        values = self.value if self.op == "in" else [self.value]
        if not isinstance(values, list) or not values:
            raise BadRequest(f"Invalid list of values for '{self.field}'.")
        for value in values:
            if type(value) is not kind:
                raise BadRequest(f"Invalid value for the '{self.field}' filter.")
            if kind is int and not 0 <= value <= BIGINT_MAX:
                raise BadRequest(f"The '{self.field}' filter must be between 0 and {BIGINT_MAX}.")
            if self.field in TIME_FIELDS:
                parse_time(value)


@dataclass(frozen=True)
class ListQuery:
    limit: int
    sort: list  # [[key, direction], ...]
    marker: str | None = None
    visibility: str | None = None
    member_status: str = "accepted"
    os_hidden: bool | None = False
    tags: list = field(default_factory=list)
    filters: list = field(default_factory=list)  # [Filter, ...]
    properties: dict = field(default_factory=dict)  # extra property name -> exact value

    def check(self) -> None:
        if type(self.limit) is not int or self.limit < 0:
            raise BadRequest("limit param must be a non-negative integer")
        if not isinstance(self.sort, list):
            raise BadRequest("Malformed sort.")
        for pair in self.sort:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise BadRequest("Malformed sort.")
            key, direction = pair
            if key not in SORT_KEYS:
                raise BadRequest(
                    f"Invalid sort key: {key}. It must be one of the following: "
                    f"{', '.join(SORT_KEYS)}."
                )
            if direction not in SORT_DIRS:
                raise BadRequest(f"Invalid sort direction: {direction}")
        if self.marker is not None and not isinstance(self.marker, str):
            raise BadRequest("Malformed marker.")
        if self.visibility is not None and self.visibility not in LIST_VISIBILITIES:
            raise BadRequest(f"Invalid visibility value: {self.visibility}")
        if self.member_status not in MEMBER_STATUSES:
            raise BadRequest(f"Invalid status: {self.member_status}")
        if self.os_hidden is not None and not isinstance(self.os_hidden, bool):
            raise BadRequest("os_hidden must be a boolean.")
        if not isinstance(self.tags, list) or not all(
            isinstance(t, str) and len(t) <= NAME_MAX for t in self.tags
        ):
            raise BadRequest("Tags must be strings of at most 255 characters.")
        for flt in self.filters:
            flt.check()
        if not isinstance(self.properties, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.properties.items()
        ):
            raise BadRequest("Property filters must map names to strings.")

    def to_wire(self) -> dict:
        return asdict(self)

    @classmethod
    def from_wire(cls, wire: dict) -> ListQuery:
        try:
            query = cls(
                **{
                    **wire,
                    "filters": [Filter(**f) for f in wire.get("filters") or []],
                }
            )
        except TypeError:
            raise BadRequest("Malformed list query.") from None
        query.check()
        return query
