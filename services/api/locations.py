"""Image API 2.17 locations: ``POST /v2/images/{id}/locations`` (a ``location_import``
task: services/registry/location_import.py, services/store/location_import.py) and
``GET /v2/images/{id}/locations`` (service role)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from services.api.gateway import call, conf, json_body
from services.common.errors import BadRequest
from services.common.url_filter import UrlFilter

bp = Blueprint("locations", __name__)

VALIDATION_KEYS = ("os_hash_algo", "os_hash_value", "checksum")


def _location_body(body) -> tuple[str, dict | None]:
    """Glance's location schema (400s)."""
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise BadRequest("Provided object does not match schema 'location': 'url' is required")
    validation_data = body.get("validation_data")
    if validation_data is not None:
        if not isinstance(validation_data, dict):
            raise BadRequest("validation_data must be an object")
        extra = sorted(set(validation_data) - set(VALIDATION_KEYS))
        if extra:
            raise BadRequest(
                f"Provided object does not match schema 'location': Additional properties "
                f"are not allowed ({', '.join(extra)} were unexpected)"
            )
        if not all(isinstance(v, str) for v in validation_data.values()):
            raise BadRequest("validation_data values must be strings")
    return body["url"], validation_data


@bp.post("/v2/images/<image_id>/locations")
def add_location(image_id):
    url, validation_data = _location_body(json_body())
    try:
        UrlFilter.from_config(conf()).check(url)
    except BadRequest:
        raise BadRequest(f"URI for add location does not pass filtering: {url}") from None
    call("registry", "add_location", image_id, url, validation_data)
    return "", 202


@bp.get("/v2/images/<image_id>/locations")
def get_locations(image_id):
    return jsonify(call("registry", "image_locations", image_id))
