"""The records the metadef calls answer, with Glance's keys in Glance's order (None
values left out, times as ``YYYY-MM-DDThh:mm:ssZ``). The gateway adds ``self`` and
``schema`` links."""

from __future__ import annotations

import json
from datetime import datetime

from services.common.metadef_schemas import PROPERTY_ORDER
from services.registry.metadefs.models import (
    MetadefNamespace,
    MetadefObject,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)


def isotime(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _compact(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None}


def namespace_record(ns: MetadefNamespace) -> dict:
    return _compact(
        {
            "namespace": ns.namespace,
            "display_name": ns.display_name,
            "description": ns.description,
            "visibility": ns.visibility,
            "protected": ns.protected,
            "owner": ns.owner,
            "created_at": isotime(ns.created_at),
            "updated_at": isotime(ns.updated_at),
        }
    )


def association_record(name: str, prefix, properties_target, created_at, updated_at) -> dict:
    return _compact(
        {
            "name": name,
            "prefix": prefix,
            "properties_target": properties_target,
            "created_at": isotime(created_at),
            "updated_at": isotime(updated_at),
        }
    )


def ordered_property(definition: dict) -> dict:
    """A stored property definition in Glance's key order (keys Glance's model does not
    know, which only a loaded file can hold, follow)."""
    known = {k: definition[k] for k in PROPERTY_ORDER if definition.get(k) is not None}
    return {**known, **{k: v for k, v in definition.items() if k not in known and v is not None}}


def property_definition(prop: MetadefProperty) -> dict:
    return ordered_property(json.loads(prop.json_schema or "{}"))


def property_record(prop: MetadefProperty) -> dict:
    return {"name": prop.name, **property_definition(prop)}


def object_properties(obj: MetadefObject) -> dict:
    return {k: ordered_property(v) for k, v in (json.loads(obj.json_schema or "{}") or {}).items()}


def object_record(obj: MetadefObject) -> dict:
    """As Glance shows a stored object: ``required`` and ``properties`` always."""
    return _compact(
        {
            "name": obj.name,
            "required": obj.required.split(",") if obj.required else [],
            "description": obj.description,
            "properties": object_properties(obj),
            "created_at": isotime(obj.created_at),
            "updated_at": isotime(obj.updated_at),
        }
    )


def resource_type_record(rt: MetadefResourceType) -> dict:
    return _compact(
        {
            "name": rt.name,
            "created_at": isotime(rt.created_at),
            "updated_at": isotime(rt.updated_at),
        }
    )


def tag_record(tag: MetadefTag) -> dict:
    return _compact(
        {
            "name": tag.name,
            "created_at": isotime(tag.created_at),
            "updated_at": isotime(tag.updated_at),
        }
    )
