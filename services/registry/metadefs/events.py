"""Glance's notifications for metadef writes (glance/notifier.py ``format_metadef_*``):
``metadef_namespace.create|update|delete|delete_objects|delete_properties|delete_tags``,
``metadef_object.*``, ``metadef_property.*``, ``metadef_resource_type.create|delete``,
``metadef_tag.create|update|delete``; payloads made from the records the calls answer."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common.metadef_schemas import PROPERTY_ORDER

#: A property's attributes in Glance's notification (``format_metadef_property_notification``):
#: its definition's, in the same order, but for ``name`` (sent apart) and two it leaves out.
PROPERTY_KEYS = tuple(k for k in PROPERTY_ORDER if k not in ("name", "operators", "readonly"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deleted(deleted: bool) -> dict:
    return {"deleted": deleted, "deleted_at": _now() if deleted else None}


def namespace(record: dict, old_name: str | None = None, deleted: bool = False) -> dict:
    return {
        "namespace": record["namespace"],
        "namespace_old": old_name or record["namespace"],
        "display_name": record.get("display_name"),
        "protected": record.get("protected"),
        "visibility": record.get("visibility"),
        "owner": record.get("owner"),
        "description": record.get("description"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        **_deleted(deleted),
    }


def metadef_object(ns: str, record: dict, old_name: str | None = None, deleted=False) -> dict:
    properties = [
        {"name": name, **{k: definition.get(k) or None for k in PROPERTY_KEYS}}
        for name, definition in (record.get("properties") or {}).items()
    ]
    return {
        "namespace": ns,
        "name": record["name"],
        "name_old": old_name or record["name"],
        "properties": properties,
        "required": record.get("required") or [],
        "description": record.get("description"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        **_deleted(deleted),
    }


def metadef_property(ns: str, record: dict, old_name: str | None = None, deleted=False) -> dict:
    return {
        "namespace": ns,
        "name": record["name"],
        "name_old": old_name or record["name"],
        **{k: record.get(k) for k in PROPERTY_KEYS},
        **_deleted(deleted),
    }


def resource_type(ns: str, record: dict, deleted: bool = False) -> dict:
    return {
        "namespace": ns,
        "name": record["name"],
        "name_old": record["name"],
        "prefix": record.get("prefix"),
        "properties_target": record.get("properties_target"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        **_deleted(deleted),
    }


def tag(ns: str, record: dict, old_name: str | None = None, deleted: bool = False) -> dict:
    return {
        "namespace": ns,
        "name": record["name"],
        "name_old": old_name or record["name"],
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        **_deleted(deleted),
    }
