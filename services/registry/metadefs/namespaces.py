"""Namespaces: who sees which (Glance's rule: admins all, others public ones and their
project's), the policy checks with Glance's rule names, and create, list, show, update
and delete."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import BadRequest, Duplicate, Forbidden, NotFound
from services.registry.metadefs import contents, events
from services.registry.metadefs.contents import associations_by_namespace
from services.registry.metadefs.models import (
    CONTENTS,
    MetadefNamespace,
    MetadefNamespaceResourceType,
    MetadefResourceType,
)
from services.registry.metadefs.records import namespace_record
from services.registry.sorting import sort_order

SORT_KEYS = (
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "created_at",
    "updated_at",
    "id",
)


def visible(ctx: RequestContext, ns: MetadefNamespace) -> bool:
    return (
        ctx.is_admin
        or ns.owner is None
        or ns.visibility == "public"
        or (ctx.project_id is not None and ns.owner == ctx.project_id)
    )


def target(ns: MetadefNamespace | None, ctx: RequestContext) -> dict:
    """The policy target, as Glance's MetadefAPIPolicy builds it."""
    if ns is None:
        return {"project_id": ctx.project_id}
    return {"project_id": ns.owner, "visibility": ns.visibility}


def not_found(name: str) -> NotFound:
    return NotFound(f"Metadata definition namespace={name} was not found.")


def find(
    session: Session,
    ctx: RequestContext,
    name: str,
    missing: str | None = None,
    hidden: str | None = None,
):
    """The namespace ``name`` if the caller may see it; else 404, with ``missing`` as the
    message when given, and ``hidden`` (else ``missing``) when it exists but the caller
    may not see it: Glance's wording differs from route to route."""
    ns = session.scalar(select(MetadefNamespace).where(MetadefNamespace.namespace == name))
    if ns is None:
        raise NotFound(missing) if missing else not_found(name)
    if not visible(ctx, ns):
        raise NotFound(hidden or missing or not_found(name))
    return ns


def authorize(ctx: RequestContext, action: str, ns: MetadefNamespace | None = None) -> None:
    """Policy check of ``action`` on ``ns``: a caller who may not even read the namespace
    gets 404, as from Glance, so that it learns nothing about it."""
    if ctx.may(action, target(ns, ctx)):
        return
    if ns is not None and (
        action == "get_metadef_namespace" or not ctx.may("get_metadef_namespace", target(ns, ctx))
    ):
        raise NotFound("The resource could not be found.")
    raise Forbidden(f"You are not authorized to complete {action} action.")


def ns_missing(name: str) -> str:
    return f"Namespace {name} not found"


def find_authorized(
    session, ctx, name: str, action: str, missing: str | None = None, hidden: str | None = None
):
    """The namespace after Glance's two steps: visible (404), then ``action`` (403/404)."""
    ns = find(session, ctx, name, missing, hidden)
    authorize(ctx, action, ns)
    return ns


# --- reading


def _sort_value(ns: MetadefNamespace, key: str):
    value = getattr(ns, key)
    return (value is not None, value if value is not None else 0)


def list_namespaces(session: Session, ctx: RequestContext, query: dict) -> dict:
    """Glance's list: ``visibility`` and ``resource_types`` filters, ``sort_key`` and
    ``sort_dir``, ``limit`` and ``marker`` (a namespace name). The catalogue is small
    (Glance ships ~40 namespaces), so the page is cut here rather than in SQL."""
    authorize(ctx, "get_metadef_namespaces")
    authorize(ctx, "list_metadef_resource_types")
    sort_key, sort_dir = sort_order(query, SORT_KEYS)
    stmt = select(MetadefNamespace)
    if not ctx.is_admin:
        public = MetadefNamespace.visibility == "public"
        stmt = stmt.where(
            or_(MetadefNamespace.owner == ctx.project_id, public) if ctx.project_id else public
        )
    if query.get("visibility"):
        stmt = stmt.where(MetadefNamespace.visibility == query["visibility"])
    if query.get("resource_types"):
        names = query["resource_types"].split(",")
        stmt = stmt.where(
            MetadefNamespace.id.in_(
                select(MetadefNamespaceResourceType.namespace_id)
                .join(MetadefResourceType)
                .where(MetadefResourceType.name.in_(names))
            )
        )
    rows = list(session.scalars(stmt))
    keys = [sort_key] + [k for k in ("created_at", "id") if k != sort_key]
    rows.sort(key=lambda ns: [_sort_value(ns, k) for k in keys], reverse=sort_dir == "desc")
    if query.get("marker") is not None:
        marker = find(session, ctx, query["marker"])
        at = next((i for i, ns in enumerate(rows) if ns.id == marker.id), None)
        rows = rows[at + 1 :] if at is not None else []
    limit = query.get("limit")
    if limit is not None:
        rows = rows[:limit]
    rows = [ns for ns in rows if ctx.may("get_metadef_namespace", target(ns, ctx))]
    associations = associations_by_namespace(session, [ns.id for ns in rows])
    page = []
    for ns in rows:
        record = namespace_record(ns)
        if associations.get(ns.id):
            record["resource_type_associations"] = associations[ns.id]
        page.append(record)
    more = bool(page) and limit is not None and len(page) == limit
    return {"namespaces": page, "next": page[-1]["namespace"] if more else None}


def show_namespace(
    session: Session, ctx: RequestContext, name: str, resource_type: str | None = None
) -> dict:
    """The namespace with its associations, properties, objects and tags; with
    ``resource_type``, property names (also in objects) carry that association's prefix."""
    ns = find(session, ctx, name, hidden="The resource could not be found.")
    authorize(ctx, "get_metadef_namespace", ns)
    for action in (
        "list_metadef_resource_types",
        "get_metadef_objects",
        "get_metadef_properties",
        "get_metadef_tags",
    ):
        authorize(ctx, action, ns)
    record = namespace_record(ns)
    associations = associations_by_namespace(session, [ns.id]).get(ns.id, [])
    if associations:
        record["resource_type_associations"] = associations
    properties = contents.property_map(session, ns)
    objects = contents.object_records(session, ns)
    prefix = next((a.get("prefix") for a in associations if a["name"] == resource_type), None)
    if resource_type and prefix:
        properties = {prefix + k: v for k, v in properties.items()}
        for obj in objects:
            obj["properties"] = {prefix + k: v for k, v in obj.get("properties", {}).items()}
            if obj.get("required"):
                obj["required"] = [prefix + r for r in obj["required"]]
    if properties:
        record["properties"] = properties
    if objects:
        record["objects"] = objects
    tags = [{"name": t["name"]} for t in contents.tag_records(session, ns, {})]
    if tags:
        record["tags"] = tags
    return record


# --- writing


def _check_new_values(values: dict) -> None:
    name = values.get("namespace")
    if not isinstance(name, str) or not name:
        raise BadRequest(
            "Provided object does not match schema 'namespace': 'namespace' is a required property"
        )


def create_namespace(session: Session, ctx: RequestContext, body: dict) -> tuple[dict, list]:
    """A namespace and what the body embeds, in one transaction (Glance creates them one
    by one and removes the namespace again when one fails). Returns its record and the
    notifications to send, ``(event, payload)``."""
    authorize(ctx, "add_metadef_namespace")
    for key, action in (
        ("resource_type_associations", "add_metadef_resource_type_association"),
        ("objects", "add_metadef_object"),
        ("properties", "add_metadef_property"),
        ("tags", "add_metadef_tag"),
    ):
        if body.get(key):
            authorize(ctx, action)
    _check_new_values(body)
    name = body["namespace"]
    if session.scalar(select(MetadefNamespace.id).where(MetadefNamespace.namespace == name)):
        raise Duplicate(f"The metadata definition namespace={name} already exists.")
    ns = MetadefNamespace(
        namespace=name,
        display_name=body.get("display_name"),
        description=body.get("description"),
        visibility=body.get("visibility") or "private",
        protected=bool(body.get("protected")),
        owner=body.get("owner") or ctx.project_id,
    )
    if not ns.owner:
        raise BadRequest("A namespace needs an owner: the caller has no project.")
    session.add(ns)
    session.flush()
    record = namespace_record(ns)
    notes = [("metadef_namespace.create", events.namespace(record))]
    associations = [
        contents.associate(session, ns, a) for a in body.get("resource_type_associations") or []
    ]
    notes += [("metadef_resource_type.create", events.resource_type(name, a)) for a in associations]
    if body.get("resource_type_associations") is not None:  # [] shown as sent
        record["resource_type_associations"] = [
            {k: a[k] for k in ("name", "prefix", "properties_target") if a.get(k) is not None}
            for a in associations
        ]
    properties = body.get("properties") or {}
    for prop_name, definition in properties.items():
        prop = contents.add_property(session, ns, {"name": prop_name, **definition})
        notes.append(("metadef_property.create", events.metadef_property(name, prop)))
    if body.get("properties") is not None:
        record["properties"] = properties
    objects = [contents.add_object(session, ns, o) for o in body.get("objects") or []]
    notes += [("metadef_object.create", events.metadef_object(name, o)) for o in objects]
    if body.get("objects") is not None:
        record["objects"] = [
            {k: v for k, v in o.items() if k not in ("created_at", "updated_at")} for o in objects
        ]
    tags = body.get("tags") or []
    for tag in tags:
        added = contents.add_tag(session, ns, tag["name"])
        notes.append(("metadef_tag.create", events.tag(name, added)))
    if body.get("tags") is not None:
        record["tags"] = [{"name": t["name"]} for t in tags]
    return record, notes


def update_namespace(session: Session, ctx: RequestContext, name: str, body: dict) -> dict:
    """Glance's PUT: the body replaces every attribute (visibility ``private``,
    ``protected`` false and the owner the caller's project when left out)."""
    ns = find(session, ctx, name, ns_missing(name))
    authorize(ctx, "modify_metadef_namespace", ns)
    _check_new_values(body)
    new_name = body["namespace"]
    if new_name != ns.namespace and session.scalar(
        select(MetadefNamespace.id).where(MetadefNamespace.namespace == new_name)
    ):
        raise Duplicate(
            "Invalid update. It would result in a duplicate metadata definition namespace "
            f"with the same name of {new_name}"
        )
    ns.namespace = new_name
    ns.display_name = body.get("display_name")
    ns.description = body.get("description")
    ns.visibility = body.get("visibility") or "private"
    ns.protected = bool(body.get("protected"))
    ns.owner = body.get("owner") or ctx.project_id or ns.owner
    session.flush()
    return namespace_record(ns)


def delete_namespace(session: Session, ctx: RequestContext, name: str) -> dict:
    ns = find(session, ctx, name, ns_missing(name))
    authorize(ctx, "delete_metadef_namespace", ns)
    if ns.protected:
        raise Forbidden(
            f"Metadata definition namespace {ns.namespace} is protected and cannot be deleted."
        )
    for model in CONTENTS:
        session.execute(delete(model).where(model.namespace_id == ns.id))
    record = namespace_record(ns)
    session.delete(ns)
    session.flush()
    return record


#: ``DELETE .../{kind}``: what goes, and what Glance checks besides delete_metadef_namespace
CONTENT_KINDS = {"objects": (), "properties": (), "tags": ("delete_metadef_tags",)}


def delete_contents(session: Session, ctx: RequestContext, name: str, kind: str) -> dict:
    """Remove all objects, properties or tags of a namespace (Glance checks
    delete_metadef_namespace for these, and refuses them in a protected namespace)."""
    if kind not in CONTENT_KINDS:
        raise BadRequest(f"Unknown kind of namespace contents: {kind}")
    ns = find(session, ctx, name, ns_missing(name))
    authorize(ctx, "delete_metadef_namespace", ns)
    for action in CONTENT_KINDS[kind]:
        authorize(ctx, action, ns)
    if ns.protected:
        raise Forbidden(
            f"Metadata definition namespace {ns.namespace} is protected and cannot be deleted."
        )
    contents.delete_all(session, ns, kind)
    return namespace_record(ns)
