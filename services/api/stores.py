"""Multiple stores (``[DEFAULT] enabled_backends``), as Glance 33 offers them:
``GET /v2/info/stores`` (and ``/detail`` for admins), ``DELETE /v2/stores/{store}/{image}``
and the store a request names (``X-Image-Meta-Store``, an import's ``stores``).

Without enabled_backends (one store, ``[glance_store] stores``) all of this is absent,
as in Glance: the info routes are 404 and ``X-Image-Meta-Store`` is ignored."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from services.api.gateway import call, conf, policy
from services.common.config import default_backend, enabled_backends, store_datadir
from services.common.errors import BadRequest, Conflict, NotFound

bp = Blueprint("stores", __name__)


def multi_store() -> bool:
    return bool(enabled_backends(conf()))


def _checked(store_id: str) -> str:
    if store_id not in enabled_backends(conf()):
        raise BadRequest(f"Unknown scheme '{store_id}' found in URI")  # glance_store's words
    return store_id


def requested_store() -> str | None:
    """The store an upload or a stage goes to: ``X-Image-Meta-Store`` (400 when no such
    store), else None (the default store). Ignored without multiple stores."""
    store_id = request.headers.get("X-Image-Meta-Store")
    if store_id is None or not multi_store():
        return None
    return _checked(store_id.strip())


def import_stores(body: dict) -> list[str]:
    """The stores an import writes to (Glance's ``get_stores_from_request``):
    ``all_stores``, else ``stores``, else ``X-Image-Meta-Store``, else the default."""
    header = request.headers.get("X-Image-Meta-Store")
    if not multi_store():
        return [default_backend(conf())]
    if body.get("all_stores", False):
        if "stores" in body or header is not None:
            raise BadRequest(
                "All_stores parameter can't be used with x-image-meta-store header or "
                "stores parameter"
            )
        return sorted(s for s, kind in enabled_backends(conf()).items() if kind != "http")
    if "stores" in body:
        if header is not None:
            raise BadRequest(
                "Stores parameter and x-image-meta-store header can't be both specified"
            )
        stores = body["stores"]
        if not isinstance(stores, list) or not all(isinstance(s, str) for s in stores):
            raise BadRequest("'stores' must be a list of store ids")
        return [_checked(s) for s in stores]
    return [_checked(header.strip()) if header is not None else default_backend(conf())]


def _stores() -> list[dict]:
    backends = enabled_backends(conf())
    if not backends:
        raise NotFound("Multi backend is not supported at this site.")
    default = default_backend(conf())
    stores = []
    for store_id in sorted(backends):
        if store_id.startswith("os_glance_"):
            continue
        store = {"id": store_id}
        description = conf()[store_id].store_description
        if description:
            store["description"] = description
        if store_id == default:
            store["default"] = "true"  # a string, as Glance answers
        if backends[store_id] == "http":
            store["read-only"] = "true"
        stores.append(store)
    return stores


def _properties(store_id: str, kind: str) -> dict:
    section = conf()[store_id]
    if kind == "file":
        return {
            "data_dir": str(store_datadir(conf(), store_id)),
            "chunk_size": 65536,
            "thin_provisioning": False,
        }
    if kind == "swift":
        return {
            "container": section.swift_store_container,
            "large_object_size": section.swift_store_large_object_size,
            "large_object_chunk_size": section.swift_store_large_object_chunk_size,
        }
    return {}


@bp.get("/v2/info/stores")
def info_stores():
    return jsonify({"stores": _stores()})


@bp.get("/v2/info/stores/detail")
def info_stores_detail():
    stores = _stores()
    policy().authorize("stores_info_detail", {"project_id": g.context.project_id}, g.context)
    backends = enabled_backends(conf())
    for store in stores:
        kind = backends[store["id"]]
        store["type"] = kind
        store["properties"] = _properties(store["id"], kind)
        store["weight"] = conf()[store["id"]].weight
    return jsonify({"stores": stores})


@bp.delete("/v2/stores/<store_id>/<image_id>")
def delete_from_store(store_id, image_id):
    if not multi_store():
        raise NotFound("The resource could not be found.")
    if store_id not in enabled_backends(conf()):
        raise Conflict(f"The selected store {store_id} is not available on this node.")
    call("registry", "delete_from_store", image_id, store_id)
    return "", 204
