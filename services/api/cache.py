"""The cache management API (Glance 2.14-2.18, ``/v2/cache``), answered for this API
node: each node has its own cache directory, and a request reaches one node through the
load balancer (README: "Image cache"). Policies as Glance's: ``cache_list``,
``cache_image``, ``cache_delete``, ``cache_clean``, ``cache_prune`` (admin by default)."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from services.api.gateway import call, conf, policy
from services.cache.index import ImageCache, cacheable_id
from services.common.config import image_cache_settings
from services.common.errors import BadRequest, Conflict, NotFound

bp = Blueprint("cache", __name__)

CLEAR_TARGETS = ("", "both", "cache", "queue")


def node_cache() -> ImageCache | None:
    """This node's image cache, or None when it is off (made once per process)."""
    extensions = current_app.extensions
    if "tessera.cache" not in extensions:
        settings = image_cache_settings(conf())
        extensions["tessera.cache"] = (
            ImageCache.from_settings(settings) if settings.enabled else None
        )
    return extensions["tessera.cache"]


def _enforce(action: str, image: dict | None = None) -> ImageCache:
    """Check the caller's right to ``action`` (on ``image``), then that the cache is on
    (404 as Glance when it is not); this node's cache."""
    if image is None:
        target = {"project_id": g.context.project_id}
    else:
        target = {
            "project_id": image["owner"],
            "owner": image["owner"],
            "visibility": image["visibility"],
        }
    policy().authorize(action, target, g.context)
    cache = node_cache()
    if cache is None:
        raise NotFound("Caching via API is not supported at this site.")
    return cache


def _image(image_id: str) -> dict | None:
    try:
        return call("registry", "get_image", image_id)
    except NotFound:
        return None


@bp.get("/v2/cache")
def cache_state():
    cache = _enforce("cache_list")
    return jsonify(cached_images=cache.cached_images(), queued_images=cache.queued_images())


@bp.put("/v2/cache/<image_id>")
def queue_image(image_id):
    image = _image(image_id)
    if image is None:
        raise NotFound(f"Image {image_id} not found.")
    cache = _enforce("cache_image", image)
    if image["status"] != "active":
        raise BadRequest("Only images with status active can be targeted for queueing")
    cache.queue(image_id)  # this node's cache service prefetches it
    return "", 202


@bp.delete("/v2/cache/<image_id>")
def delete_cache_entry(image_id):
    image = _image(image_id)
    if image is None:
        cache = node_cache()
        known = (
            cache is not None
            and cacheable_id(image_id)
            and (cache.is_cached(image_id) or image_id in cache.queued_images())
        )
        if not known:
            raise NotFound(f"Image {image_id} not found.")
    cache = _enforce("cache_delete", image)
    cache.evict(image_id)
    cache.dequeue(image_id)
    return "", 204


@bp.delete("/v2/cache")
def clear_cache():
    cache = _enforce("cache_delete")
    target = request.headers.get("x-image-cache-clear-target", "").strip().lower()
    if target not in CLEAR_TARGETS:
        raise BadRequest(
            "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string."
        )
    if target in ("", "both", "cache"):
        cache.evict_all()
    if target in ("", "both", "queue"):
        cache.dequeue_all()
    return "", 204


@bp.post("/v2/cache/clean")
def clean_cache():
    _enforce("cache_clean").clean()
    return "", 200


@bp.post("/v2/cache/prune")
def prune_cache():
    files, size = _enforce("cache_prune").prune()
    return jsonify(total_files_pruned=files, total_bytes_pruned=size)


@bp.get("/v2/cache/nodes/<image_id>")
def cached_nodes(image_id):
    _enforce("list_cached_nodes")
    raise Conflict("Centralized caching is not enabled")
