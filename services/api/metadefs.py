"""``/v2/metadefs/...`` (metadata definitions) and ``/v2/schemas/metadefs/*``, as Glance 33
serves them. The registry holds the catalogue and applies the rules
(services/registry/metadefs/); this module reads the request, refuses read-only
attributes and bad query values as Glance does, and adds Glance's links."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, jsonify, request
from oslo_utils import strutils

from services.api.gateway import call, conf, json_body, path_text
from services.common import metadef_schemas
from services.common.errors import BadRequest, Forbidden, NotFound

bp = Blueprint("metadefs", __name__)

NAMESPACES = "/v2/metadefs/namespaces"
NS = NAMESPACES + "/<namespace>"
LINKED_READ_ONLY = ("self", "schema", "created_at", "updated_at")
READ_ONLY = ("created_at", "updated_at")


def _body(read_only=READ_ONLY) -> dict:
    """The JSON object of the request; Glance refuses read-only attributes with 403."""
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    for key in read_only:
        if key in body:
            raise Forbidden(f"Attribute '{key}' is read-only.")
    return body


def _created(document, location: str | None = None):
    response = jsonify(document)
    response.status_code = 201
    if location:
        response.headers["Location"] = location
    return response


def _limit(value: str | None, strict_positive: bool = False) -> int | None:
    if value is None:
        return None
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0 or (strict_positive and limit == 0):
        raise BadRequest("limit param must be positive")
    return limit


def _sort_dir() -> str:
    sort_dir = request.args.get("sort_dir", "desc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {sort_dir}")
    return sort_dir


def _ns(namespace: str) -> str:
    return path_text(namespace, "namespace")


def namespace_href(name: str) -> str:
    return f"{NAMESPACES}/{name}"


def _linked_namespace(record: dict, object_links: bool = True) -> dict:
    name = record["namespace"]
    if object_links:
        for obj in record.get("objects", []):
            _link_object(name, obj)
    return {**record, "self": namespace_href(name), "schema": "/v2/schemas/metadefs/namespace"}


def _link_object(namespace: str, obj: dict) -> dict:
    obj["self"] = f"{NAMESPACES}/{namespace}/objects/{obj['name']}"
    obj["schema"] = "/v2/schemas/metadefs/object"
    return obj


# --- schemas


@bp.get("/v2/schemas/metadefs/<name>")
def schema(name):
    document = metadef_schemas.served().get(name)
    if document is None:
        raise NotFound("The resource could not be found.")
    return jsonify(document)


# --- namespaces


@bp.get(NAMESPACES)
def list_namespaces():
    args = request.args
    visibility = args.get("visibility")
    if visibility and visibility not in ("public", "private"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    settings = conf()
    limit = _limit(args.get("limit"))
    limit = min(settings.api_limit_max, settings.limit_param_default if limit is None else limit)
    query = {
        "limit": limit,
        "marker": args.get("marker"),
        "sort_key": args.get("sort_key", "created_at"),
        "sort_dir": _sort_dir(),
        "visibility": visibility,
        "resource_types": args.get("resource_types"),
    }
    page = call("registry", "list_metadef_namespaces", query)
    params = {k: v for k, v in args.items() if k != "marker"}
    body = {"namespaces": [_linked_namespace(ns) for ns in page["namespaces"]]}
    body["first"] = NAMESPACES + (f"?{urlencode(params)}" if params else "")
    body["schema"] = "/v2/schemas/metadefs/namespaces"
    if page.get("next"):
        body["next"] = f"{NAMESPACES}?{urlencode({**params, 'marker': page['next']})}"
    return jsonify(body)


@bp.post(NAMESPACES)
def create_namespace():
    record = call("registry", "create_metadef_namespace", _body(LINKED_READ_ONLY))
    return _created(_linked_namespace(record, False), namespace_href(record["namespace"]))


@bp.get(NS)
def show_namespace(namespace):
    resource_type = request.args.get("resource_type")
    record = call("registry", "get_metadef_namespace", _ns(namespace), resource_type)
    return jsonify(_linked_namespace(record))


@bp.put(NS)
def update_namespace(namespace):
    body = _body(LINKED_READ_ONLY)
    record = call("registry", "update_metadef_namespace", _ns(namespace), body)
    return jsonify(_linked_namespace(record))


@bp.delete(NS)
def delete_namespace(namespace):
    call("registry", "delete_metadef_namespace", _ns(namespace))
    return "", 204


@bp.delete(NS + "/<any(objects, properties, tags):kind>")
def delete_contents(namespace, kind):
    call("registry", "delete_metadef_contents", _ns(namespace), kind)
    return "", 204


# --- resource types


@bp.get("/v2/metadefs/resource_types")
def list_resource_types():
    return jsonify({"resource_types": call("registry", "list_metadef_resource_types")})


@bp.get(NS + "/resource_types")
def list_associations(namespace):
    found = call("registry", "list_metadef_associations", _ns(namespace))
    return jsonify({"resource_type_associations": found})


@bp.post(NS + "/resource_types")
def associate(namespace):
    return _created(call("registry", "add_metadef_association", _ns(namespace), _body()))


@bp.delete(NS + "/resource_types/<resource_type>")
def dissociate(namespace, resource_type):
    resource_type = path_text(resource_type, "resource type")
    call("registry", "remove_metadef_association", _ns(namespace), resource_type)
    return "", 204


# --- properties


@bp.get(NS + "/properties")
def list_properties(namespace):
    return jsonify({"properties": call("registry", "list_metadef_properties", _ns(namespace))})


@bp.post(NS + "/properties")
def create_property(namespace):
    return _created(call("registry", "add_metadef_property", _ns(namespace), _body()))


@bp.get(NS + "/properties/<name>")
def show_property(namespace, name):
    name = path_text(name, "property name")
    resource_type = request.args.get("resource_type")
    return jsonify(call("registry", "get_metadef_property", _ns(namespace), name, resource_type))


@bp.put(NS + "/properties/<name>")
def update_property(namespace, name):
    name = path_text(name, "property name")
    body = _body()
    return jsonify(call("registry", "update_metadef_property", _ns(namespace), name, body))


@bp.delete(NS + "/properties/<name>")
def delete_property(namespace, name):
    name = path_text(name, "property name")
    call("registry", "remove_metadef_property", _ns(namespace), name)
    return "", 204


# --- objects


@bp.get(NS + "/objects")
def list_objects(namespace):
    namespace = _ns(namespace)
    found = call("registry", "list_metadef_objects", namespace)
    # "v2/..." without the slash: Glance's own
    return jsonify(
        {
            "objects": [_link_object(namespace, o) for o in found],
            "schema": "v2/schemas/metadefs/objects",
        }
    )


@bp.post(NS + "/objects")
def create_object(namespace):
    namespace = _ns(namespace)
    record = call("registry", "add_metadef_object", namespace, _body(LINKED_READ_ONLY))
    return _created(_link_object(namespace, record))


@bp.get(NS + "/objects/<name>")
def show_object(namespace, name):
    namespace, name = _ns(namespace), path_text(name, "object name")
    return jsonify(_link_object(namespace, call("registry", "get_metadef_object", namespace, name)))


@bp.put(NS + "/objects/<name>")
def update_object(namespace, name):
    namespace, name = _ns(namespace), path_text(name, "object name")
    body = _body(LINKED_READ_ONLY)
    record = call("registry", "update_metadef_object", namespace, name, body)
    return jsonify(_link_object(namespace, record))


@bp.delete(NS + "/objects/<name>")
def delete_object(namespace, name):
    call("registry", "remove_metadef_object", _ns(namespace), path_text(name, "object name"))
    return "", 204


# --- tags


@bp.get(NS + "/tags")
def list_tags(namespace):
    args = request.args
    query = {
        "limit": _limit(args.get("limit") or None),
        "marker": args.get("marker") or None,
        "sort_key": args.get("sort_key", "created_at"),
        "sort_dir": _sort_dir(),
    }
    return jsonify({"tags": call("registry", "list_metadef_tags", _ns(namespace), query)})


@bp.post(NS + "/tags")
def create_tags(namespace):
    body = _body()
    append = strutils.bool_from_string(request.headers.get("X-Openstack-Append"))
    tags = call("registry", "add_metadef_tags", _ns(namespace), body, append)
    return _created({"tags": tags})


@bp.post(NS + "/tags/<name>")
def create_tag(namespace, name):
    name = path_text(name, "tag name")
    return _created(call("registry", "add_metadef_tag", _ns(namespace), name))


@bp.get(NS + "/tags/<name>")
def show_tag(namespace, name):
    name = path_text(name, "tag name")
    return jsonify(call("registry", "get_metadef_tag", _ns(namespace), name))


@bp.put(NS + "/tags/<name>")
def rename_tag(namespace, name):
    name = path_text(name, "tag name")
    return jsonify(call("registry", "rename_metadef_tag", _ns(namespace), name, _body()))


@bp.delete(NS + "/tags/<name>")
def delete_tag(namespace, name):
    call("registry", "remove_metadef_tag", _ns(namespace), path_text(name, "tag name"))
    return "", 204
