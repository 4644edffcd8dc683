"""What a namespace holds: property definitions, objects, tags and its associations with
resource types. The callers (entrypoints.py, namespaces.py) have found the namespace and
checked the policy; these functions store and read, with Glance's messages for what is
missing or taken."""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.common.errors import BadRequest, Duplicate, Forbidden, NotFound
from services.registry.metadefs.models import (
    MetadefNamespace,
    MetadefNamespaceResourceType,
    MetadefObject,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)
from services.registry.metadefs.records import (
    association_record,
    object_record,
    property_definition,
    property_record,
    resource_type_record,
    tag_record,
)
from services.registry.sorting import sort_order

MODELS = {"properties": MetadefProperty, "objects": MetadefObject, "tags": MetadefTag}
TAG_SORT_KEYS = ("name", "created_at", "updated_at", "id")


def _dumps(document) -> str:
    return json.dumps(document, separators=(",", ":"))


def _by_name(session: Session, model, ns: MetadefNamespace, name: str):
    return session.scalar(select(model).where(model.namespace_id == ns.id, model.name == name))


def delete_all(session: Session, ns: MetadefNamespace, kind: str) -> None:
    model = MODELS[kind]
    session.execute(delete(model).where(model.namespace_id == ns.id))


def _found(row, missing: str):
    """``row``, or 404 with Glance's message ``missing`` when there is none."""
    if row is None:
        raise NotFound(missing)
    return row


def _name_free(session: Session, model, ns: MetadefNamespace, name: str, what: str) -> None:
    """409 when a ``model`` row (a property or object: ``what``) named ``name`` is in ``ns``."""
    if _by_name(session, model, ns, name) is not None:
        raise Duplicate(
            f"A metadata definition {what} with name={name} already exists in "
            f"namespace={ns.namespace}."
        )


def _rename_free(session: Session, ns: MetadefNamespace, row, new_name: str, what: str) -> None:
    """409 when renaming ``row`` (a property or object: ``what``) would take another's name."""
    if new_name != row.name and _by_name(session, type(row), ns, new_name) is not None:
        raise Duplicate(
            f"Invalid update. It would result in a duplicate metadata definition {what} "
            f"with the same name={new_name} in namespace={ns.namespace}."
        )


def _delete_unprotected(session: Session, ns: MetadefNamespace, row, what: str, name: str):
    """Delete ``row`` (403 when ``ns`` is protected, Glance's message naming ``what``
    ``name``) and answer it."""
    if ns.protected:
        raise Forbidden(f"Metadata definition {what} {name} is protected and cannot be deleted.")
    session.delete(row)
    return row


# --- properties


def property_map(session: Session, ns: MetadefNamespace) -> dict:
    rows = session.scalars(
        select(MetadefProperty)
        .where(MetadefProperty.namespace_id == ns.id)
        .order_by(MetadefProperty.name)
    )
    return {prop.name: property_definition(prop) for prop in rows}


def get_property(session: Session, ns: MetadefNamespace, name: str) -> MetadefProperty:
    return _found(_by_name(session, MetadefProperty, ns, name), f"Could not find property {name}")


def add_property(session: Session, ns: MetadefNamespace, definition: dict) -> dict:
    """``definition`` is normalised (services/common/metadef_schemas.property_type)."""
    name = definition["name"]
    _name_free(session, MetadefProperty, ns, name, "property")
    schema = {k: v for k, v in definition.items() if k != "name"}
    prop = MetadefProperty(namespace_id=ns.id, name=name, json_schema=_dumps(schema))
    session.add(prop)
    session.flush()
    return property_record(prop)


def update_property(session: Session, ns: MetadefNamespace, name: str, definition: dict) -> dict:
    prop = get_property(session, ns, name)
    new_name = definition["name"]
    _rename_free(session, ns, prop, new_name, "property")
    prop.name = new_name
    prop.json_schema = _dumps({k: v for k, v in definition.items() if k != "name"})
    session.flush()
    return property_record(prop)


def remove_property(session: Session, ns: MetadefNamespace, name: str) -> dict:
    prop = get_property(session, ns, name)
    return property_record(_delete_unprotected(session, ns, prop, "property", name))


# --- objects


def object_records(session: Session, ns: MetadefNamespace) -> list[dict]:
    rows = session.scalars(
        select(MetadefObject)
        .where(MetadefObject.namespace_id == ns.id)
        .order_by(MetadefObject.name)
    )
    return [object_record(obj) for obj in rows]


def get_object(session: Session, ns: MetadefNamespace, name: str) -> MetadefObject:
    obj = _by_name(session, MetadefObject, ns, name)
    return _found(obj, f"Could not find metadata object {name}")


def _object_columns(body: dict) -> dict:
    required = body.get("required") or None
    return {
        "name": body["name"],
        "description": body.get("description"),
        "required": ",".join(required) if required else None,
        "json_schema": _dumps(body.get("properties") or {}),
    }


def add_object(session: Session, ns: MetadefNamespace, body: dict) -> dict:
    """The new object, as Glance answers a create: what was sent, and the times."""
    _name_free(session, MetadefObject, ns, body["name"], "object")
    obj = MetadefObject(namespace_id=ns.id, **_object_columns(body))
    session.add(obj)
    session.flush()
    record = object_record(obj)
    for key in ("required", "properties"):
        if not body.get(key) and body.get(key) != []:
            record.pop(key, None)
    return record


def update_object(session: Session, ns: MetadefNamespace, name: str, body: dict) -> dict:
    obj = get_object(session, ns, name)
    _rename_free(session, ns, obj, body["name"], "object")
    for key, value in _object_columns(body).items():
        setattr(obj, key, value)
    session.flush()
    return object_record(obj)


def remove_object(session: Session, ns: MetadefNamespace, name: str) -> dict:
    obj = get_object(session, ns, name)
    return object_record(_delete_unprotected(session, ns, obj, "object", name))


# --- tags


def _duplicate_tag(ns: MetadefNamespace, name: str) -> Duplicate:
    return Duplicate(
        f"A metadata tag with name={name} already exists in namespace={ns.namespace}. "
        "(Please note that metadata tag names are case insensitive)."
    )


def _check_tag_name(name) -> str:
    if not isinstance(name, str) or not name or len(name) > 80:
        raise BadRequest("A tag name is a string of 1 to 80 characters.")
    return name


def get_tag(session: Session, ns: MetadefNamespace, name: str) -> MetadefTag:
    return _found(_by_name(session, MetadefTag, ns, name), f"Could not find metadata tag {name}")


def _tag_taken(session: Session, ns: MetadefNamespace, name: str) -> bool:
    # the database decides (MySQL's collation ignores case, as Glance warns)
    return _by_name(session, MetadefTag, ns, name) is not None


def add_tag(session: Session, ns: MetadefNamespace, name: str) -> dict:
    name = _check_tag_name(name)
    if _tag_taken(session, ns, name):
        raise _duplicate_tag(ns, name)
    tag = MetadefTag(namespace_id=ns.id, name=name)
    session.add(tag)
    session.flush()
    return tag_record(tag)


def add_tags(session: Session, ns: MetadefNamespace, names: list[str], append: bool) -> list:
    """Glance's bulk create: without ``append`` the namespace's tags are replaced.
    Returns the new tags' records."""
    if names and not append:  # an empty list changes nothing (Glance's)
        delete_all(session, ns, "tags")
        session.flush()
    seen: set[str] = set()
    added = []
    for name in names:
        _check_tag_name(name)
        if name.lower() in seen or _tag_taken(session, ns, name):
            raise _duplicate_tag(ns, name)
        seen.add(name.lower())
        tag = MetadefTag(namespace_id=ns.id, name=name)
        session.add(tag)
        session.flush()
        added.append(tag_record(tag))
    return added


def tag_records(session: Session, ns: MetadefNamespace, query: dict) -> list[dict]:
    """A namespace's tags, sorted (``sort_key``, default created_at, ``sort_dir``,
    default desc) and paged after the tag named ``marker``."""
    sort_key, sort_dir = sort_order(query, TAG_SORT_KEYS)
    rows = list(session.scalars(select(MetadefTag).where(MetadefTag.namespace_id == ns.id)))
    keys = [sort_key] + [k for k in ("created_at", "id") if k != sort_key]
    rows.sort(key=lambda t: [getattr(t, k) for k in keys], reverse=sort_dir == "desc")
    if query.get("marker"):
        marker = get_tag(session, ns, query["marker"])
        at = next(i for i, t in enumerate(rows) if t.id == marker.id)
        rows = rows[at + 1 :]
    if query.get("limit") is not None:
        rows = rows[: query["limit"]]
    return [tag_record(t) for t in rows]


def rename_tag(session: Session, ns: MetadefNamespace, name: str, new_name: str) -> dict:
    tag = get_tag(session, ns, name)
    new_name = _check_tag_name(new_name)
    if new_name != tag.name and _tag_taken(session, ns, new_name):
        raise _duplicate_tag(ns, new_name)
    tag.name = new_name
    session.flush()
    return tag_record(tag)


def remove_tag(session: Session, ns: MetadefNamespace, name: str) -> dict:
    tag = get_tag(session, ns, name)
    return tag_record(_delete_unprotected(session, ns, tag, "tag", name))


# --- resource types and associations


def resource_type_records(session: Session) -> list[dict]:
    rows = session.scalars(select(MetadefResourceType).order_by(MetadefResourceType.id))
    return [resource_type_record(rt) for rt in rows]


def associations_by_namespace(session: Session, namespace_ids: list[int]) -> dict[int, list]:
    """The associations of each of these namespaces, oldest first."""
    rows = session.execute(
        select(
            MetadefNamespaceResourceType.namespace_id,
            MetadefResourceType.name,
            MetadefNamespaceResourceType.prefix,
            MetadefNamespaceResourceType.properties_target,
            MetadefNamespaceResourceType.created_at,
            MetadefNamespaceResourceType.updated_at,
        )
        .join(
            MetadefResourceType,
            MetadefResourceType.id == MetadefNamespaceResourceType.resource_type_id,
        )
        .where(MetadefNamespaceResourceType.namespace_id.in_(namespace_ids))
        .order_by(MetadefNamespaceResourceType.created_at, MetadefResourceType.id)
    ).all()
    found: dict[int, list] = {}
    for ns_id, *fields in rows:
        found.setdefault(ns_id, []).append(association_record(*fields))
    return found


def association_records(session: Session, ns: MetadefNamespace) -> list[dict]:
    return associations_by_namespace(session, [ns.id]).get(ns.id, [])


def resource_type(session: Session, name: str, create: bool = False, protected=False):
    rt = session.scalar(select(MetadefResourceType).where(MetadefResourceType.name == name))
    if rt is None and create:
        rt = MetadefResourceType(name=name, protected=protected)
        session.add(rt)
        session.flush()
    return rt


def associate(session: Session, ns: MetadefNamespace, body: dict) -> dict:
    """Associate the resource type ``body["name"]`` (created when new) with ``ns``."""
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > 80:
        raise BadRequest("A resource type name is a string of 1 to 80 characters.")
    rt = resource_type(session, name, create=True)
    if session.get(MetadefNamespaceResourceType, (rt.id, ns.id)) is not None:
        raise Duplicate(
            f"The metadata definition resource-type association of resource-type={name} to "
            f"namespace={ns.namespace} already exists."
        )
    link = MetadefNamespaceResourceType(
        resource_type_id=rt.id,
        namespace_id=ns.id,
        prefix=body.get("prefix"),
        properties_target=body.get("properties_target"),
    )
    session.add(link)
    session.flush()
    return association_record(
        name, link.prefix, link.properties_target, link.created_at, link.updated_at
    )


def dissociate(session: Session, ns: MetadefNamespace, name: str) -> dict:
    rt = resource_type(session, name)
    link = session.get(MetadefNamespaceResourceType, (rt.id, ns.id)) if rt else None
    _found(link, f"Failed to find resource type {name} to delete")
    _delete_unprotected(session, ns, link, "resource-type-association", name)
    return association_record(
        name, link.prefix, link.properties_target, link.created_at, link.updated_at
    )
