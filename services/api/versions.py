"""Version discovery (``/`` and ``/versions``) and the schemas (``/v2/schemas/...``)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from services.api import schemas

bp = Blueprint("versions", __name__)

# (version, status) newest first, as Glance 33 lists them.
VERSIONS = [("2.17", "CURRENT")] + [(f"2.{n}", "SUPPORTED") for n in range(16, -1, -1)]


def _versions_body() -> dict:
    # as Glance: [DEFAULT] public_endpoint, else the URL the request came to (with the
    # X-Forwarded-* headers when http_proxy_to_wsgi parses them)
    public = current_app.extensions["tessera.conf"].public_endpoint
    root = (public or request.url_root).rstrip("/")
    return {
        "versions": [
            {"id": f"v{v}", "status": status, "links": [{"rel": "self", "href": f"{root}/v2/"}]}
            for v, status in VERSIONS
        ]
    }


@bp.get("/")
def root():
    response = jsonify(_versions_body())
    response.status_code = 300
    return response


@bp.get("/versions")
def versions():
    return jsonify(_versions_body())


@bp.get("/v2/schemas/image")
def image_schema():
    return jsonify(current_app.extensions["tessera.image_schema"])


@bp.get("/v2/schemas/images")
def images_schema():
    return jsonify(
        schemas.collection_schema("images", current_app.extensions["tessera.image_schema"])
    )


@bp.get("/v2/schemas/member")
def member_schema():
    return jsonify(schemas.MEMBER_SCHEMA)


@bp.get("/v2/schemas/members")
def members_schema():
    return jsonify(schemas.members_schema())
