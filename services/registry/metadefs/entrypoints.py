"""The registry's metadef RPC methods, a mixin of RegistryService (services/registry/
service.py): each finds the namespace, checks Glance's policy rule and calls the domain,
in one transaction. Bodies come checked by the gateway and are checked again here
(services/common/metadef_schemas.py)."""

from __future__ import annotations

from services.common import metadef_schemas as schemas
from services.common.errors import NotFound
from services.common.rpc import rpc
from services.registry.metadefs import contents, events
from services.registry.metadefs import namespaces as ns_api
from services.registry.metadefs.namespaces import find_authorized, ns_missing
from services.registry.metadefs.records import object_record, property_record, tag_record

#: Glance's notification payload for a write to each kind of content, by event prefix.
_CONTENT_PAYLOADS = {
    "metadef_property": events.metadef_property,
    "metadef_object": events.metadef_object,
    "metadef_tag": events.tag,
}


def checked_namespace(body) -> dict:
    schemas.validate("namespace", body)
    body = dict(body)
    if body.get("properties"):
        body["properties"] = schemas.property_types(body["properties"])
    for obj in body.get("objects") or []:
        obj.update(checked_object(obj, require_name=False))
    return body


def checked_object(body, require_name: bool = True) -> dict:
    if require_name:
        schemas.validate("object", body)
    for definition in (body.get("properties") or {}).values():
        schemas.validate("property_unnamed", definition, "property")
    return {**body, "properties": schemas.property_types(body.get("properties"))}


def checked_property(body) -> dict:
    schemas.validate("property", body)
    return schemas.property_type(body, "property")


class MetadefEntrypoints:
    """Mixed into RegistryService, which provides ``db``, ``context`` and ``notifier``
    (Glance's notifications, sent after the commit)."""

    def _notify_metadefs(self, *notes: tuple[str, dict]) -> None:
        for event, payload in notes:
            self.notifier.info(event, payload)

    # --- namespaces

    @rpc
    def list_metadef_namespaces(self, query: dict) -> dict:
        with self.db.begin() as session:
            return ns_api.list_namespaces(session, self.context, query)

    @rpc
    def get_metadef_namespace(self, namespace: str, resource_type: str | None = None) -> dict:
        with self.db.begin() as session:
            return ns_api.show_namespace(session, self.context, namespace, resource_type)

    @rpc
    def create_metadef_namespace(self, body: dict) -> dict:
        body = checked_namespace(body)
        with self.db.begin() as session:
            record, notes = ns_api.create_namespace(session, self.context, body)
        self._notify_metadefs(*notes)
        return record

    @rpc
    def update_metadef_namespace(self, namespace: str, body: dict) -> dict:
        schemas.validate("namespace", body)
        with self.db.begin() as session:
            record = ns_api.update_namespace(session, self.context, namespace, body)
        self._notify_metadefs(("metadef_namespace.update", events.namespace(record, namespace)))
        return record

    @rpc
    def delete_metadef_namespace(self, namespace: str) -> None:
        with self.db.begin() as session:
            record = ns_api.delete_namespace(session, self.context, namespace)
        self._notify_metadefs(("metadef_namespace.delete", events.namespace(record, deleted=True)))

    @rpc
    def delete_metadef_contents(self, namespace: str, kind: str) -> None:
        """``kind``: objects, properties or tags."""
        with self.db.begin() as session:
            record = ns_api.delete_contents(session, self.context, namespace, kind)
        self._notify_metadefs((f"metadef_namespace.delete_{kind}", events.namespace(record)))

    # --- finding the namespace of a call on what it holds

    def _namespace(self, session, namespace: str, action: str):
        """The namespace of a resource-type, property or tag call, found and authorized for
        ``action``; one that does not exist or that the caller may not see is Glance's
        "Namespace ... not found" there."""
        return find_authorized(session, self.context, namespace, action, ns_missing(namespace))

    def _object_namespace(self, session, namespace: str, action: str):
        """As ``_namespace``, for an object call: there Glance words a namespace that does not
        exist apart ("Metadata definition namespace=... was not found.")."""
        return find_authorized(
            session, self.context, namespace, action, None, ns_missing(namespace)
        )

    def _write_content(self, event: str, namespace: str, action: str, write, *args, old_name=None):
        """``write(session, ns, *args)`` in one transaction, on the namespace found for
        ``action``; after the commit, Glance's notification ``event`` (``metadef_property``,
        ``metadef_object`` or ``metadef_tag``, then ``.create|update|delete``) of the record
        written, which is answered. ``old_name``: the name before an update."""
        kind, verb = event.split(".")
        find = self._object_namespace if kind == "metadef_object" else self._namespace
        with self.db.begin() as session:
            record = write(session, find(session, namespace, action), *args)
        payload = _CONTENT_PAYLOADS[kind](namespace, record, old_name, deleted=verb == "delete")
        self._notify_metadefs((event, payload))
        return record

    # --- resource types

    @rpc
    def list_metadef_resource_types(self) -> list:
        ns_api.authorize(self.context, "list_metadef_resource_types")
        with self.db.begin() as session:
            return contents.resource_type_records(session)

    @rpc
    def list_metadef_associations(self, namespace: str) -> list:
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "list_metadef_resource_types")
            if not self.context.may("get_metadef_resource_type", ns_api.target(ns, self.context)):
                return []
            return contents.association_records(session, ns)

    @rpc
    def add_metadef_association(self, namespace: str, body: dict) -> dict:
        schemas.validate("resource_type", body)
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "add_metadef_resource_type_association")
            record = contents.associate(session, ns, body)
        self._notify_metadefs(
            ("metadef_resource_type.create", events.resource_type(namespace, record))
        )
        return record

    @rpc
    def remove_metadef_association(self, namespace: str, resource_type: str) -> None:
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "remove_metadef_resource_type_association")
            record = contents.dissociate(session, ns, resource_type)
        self._notify_metadefs(
            ("metadef_resource_type.delete", events.resource_type(namespace, record, True))
        )

    # --- properties

    @rpc
    def list_metadef_properties(self, namespace: str) -> dict:
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "get_metadef_properties")
            return contents.property_map(session, ns)

    @rpc
    def get_metadef_property(
        self, namespace: str, name: str, resource_type: str | None = None
    ) -> dict:
        """With ``resource_type``, ``name`` carries that association's prefix."""
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "get_metadef_property")
            if resource_type:
                ns_api.authorize(self.context, "get_metadef_resource_type", ns)
                prefix = _prefix(session, ns, resource_type)
                if not (prefix and name.startswith(prefix)):
                    raise NotFound(
                        f"Property {name} does not start with the expected resource type "
                        f"association prefix of '{prefix}'."
                    )
                name = name[len(prefix) :]
            return property_record(contents.get_property(session, ns, name))

    @rpc
    def add_metadef_property(self, namespace: str, body: dict) -> dict:
        definition = checked_property(body)
        return self._write_content(
            "metadef_property.create",
            namespace,
            "add_metadef_property",
            contents.add_property,
            definition,
        )

    @rpc
    def update_metadef_property(self, namespace: str, name: str, body: dict) -> dict:
        definition = checked_property(body)
        return self._write_content(
            "metadef_property.update",
            namespace,
            "modify_metadef_property",
            contents.update_property,
            name,
            definition,
            old_name=name,
        )

    @rpc
    def remove_metadef_property(self, namespace: str, name: str) -> None:
        self._write_content(
            "metadef_property.delete",
            namespace,
            "remove_metadef_property",
            contents.remove_property,
            name,
        )

    # --- objects

    @rpc
    def list_metadef_objects(self, namespace: str) -> list:
        with self.db.begin() as session:
            ns = self._object_namespace(session, namespace, "get_metadef_objects")
            if not self.context.may("get_metadef_object", ns_api.target(ns, self.context)):
                return []
            return contents.object_records(session, ns)

    @rpc
    def get_metadef_object(self, namespace: str, name: str) -> dict:
        with self.db.begin() as session:
            ns = self._object_namespace(session, namespace, "get_metadef_object")
            return object_record(contents.get_object(session, ns, name))

    @rpc
    def add_metadef_object(self, namespace: str, body: dict) -> dict:
        body = checked_object(body)
        return self._write_content(
            "metadef_object.create", namespace, "add_metadef_object", contents.add_object, body
        )

    @rpc
    def update_metadef_object(self, namespace: str, name: str, body: dict) -> dict:
        body = checked_object(body)
        return self._write_content(
            "metadef_object.update",
            namespace,
            "modify_metadef_object",
            contents.update_object,
            name,
            body,
            old_name=name,
        )

    @rpc
    def remove_metadef_object(self, namespace: str, name: str) -> None:
        self._write_content(
            "metadef_object.delete",
            namespace,
            "delete_metadef_object",
            contents.remove_object,
            name,
        )

    # --- tags

    @rpc
    def list_metadef_tags(self, namespace: str, query: dict) -> list:
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "get_metadef_tags")
            return [{"name": t["name"]} for t in contents.tag_records(session, ns, query)]

    @rpc
    def get_metadef_tag(self, namespace: str, name: str) -> dict:
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "get_metadef_tag")
            return tag_record(contents.get_tag(session, ns, name))

    @rpc
    def add_metadef_tag(self, namespace: str, name: str) -> dict:
        schemas.validate("tag", {"name": name})
        return self._write_content(
            "metadef_tag.create", namespace, "add_metadef_tag", contents.add_tag, name
        )

    @rpc
    def add_metadef_tags(self, namespace: str, body: dict, append: bool) -> list:
        schemas.validate("tags_body", body)
        with self.db.begin() as session:
            ns = self._namespace(session, namespace, "add_metadef_tags")
            added = contents.add_tags(
                session, ns, [t["name"] for t in body.get("tags") or []], append
            )
        self._notify_metadefs(*[("metadef_tag.create", events.tag(namespace, t)) for t in added])
        return [{"name": t["name"]} for t in added]

    @rpc
    def rename_metadef_tag(self, namespace: str, name: str, body: dict) -> dict:
        schemas.validate("tag", body)
        return self._write_content(
            "metadef_tag.update",
            namespace,
            "modify_metadef_tag",
            contents.rename_tag,
            name,
            body["name"],
            old_name=name,
        )

    @rpc
    def remove_metadef_tag(self, namespace: str, name: str) -> None:
        self._write_content(
            "metadef_tag.delete", namespace, "delete_metadef_tag", contents.remove_tag, name
        )


def _prefix(session, ns, resource_type: str) -> str | None:
    if contents.resource_type(session, resource_type) is None:
        raise NotFound(
            f"The metadata definition resource-type with name={resource_type}, was not found."
        )
    for association in contents.association_records(session, ns):
        if association["name"] == resource_type:
            return association.get("prefix")
    raise NotFound(
        f"The metadata definition resource-type association of resource-type={resource_type} "
        f"to namespace={ns.namespace}, was not found."
    )
