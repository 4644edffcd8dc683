"""Version discovery (``/`` and ``/versions``) and the schemas (``/v2/schemas/...``)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from services.api import schemas
from services.api.cache import node_cache
from services.common.config import enabled_backends

bp = Blueprint("versions", __name__)

# (version, status) newest first: the versions Glance 33 lists without enabled_backends
# (2.8 and 2.10-2.13 are the multi-store ones), and with the image cache on 2.14-2.18
# (2.18 CURRENT) in place of 2.15 and 2.17 CURRENT (glance/api/versions.py).
BASE_VERSIONS = [(f"2.{n}", "SUPPORTED") for n in (9, 7, 6, 5, 4, 3, 2, 1, 0)]
VERSIONS = [("2.17", "CURRENT"), ("2.15", "SUPPORTED"), *BASE_VERSIONS]
CACHE_VERSIONS = [("2.18", "CURRENT")] + [(f"2.{n}", "SUPPORTED") for n in (17, 16, 15, 14)]
VERSIONS_WITH_CACHE = CACHE_VERSIONS + BASE_VERSIONS
# With [DEFAULT] enabled_backends Glance lists 2.8-2.13 (multiple stores) in place of 2.9.
MULTI_STORE_VERSIONS = [(f"2.{n}", "SUPPORTED") for n in (13, 12, 11, 10, 9, 8)]


def _listed_versions(cached: bool, multi_store: bool) -> list[tuple[str, str]]:
    listed = VERSIONS_WITH_CACHE if cached else VERSIONS
    if not multi_store:
        return listed
    at = listed.index(("2.9", "SUPPORTED"))
    return listed[:at] + MULTI_STORE_VERSIONS + listed[at + 1 :]


# The legacy v1 API's, listed when [DEFAULT] enable_v1_api is on (services/api/v1.py).
V1_VERSIONS = ("1.1", "1.0")


def _versions_body() -> dict:
    # as Glance: [DEFAULT] public_endpoint, else the URL the request came to (with the
    # X-Forwarded-* headers when http_proxy_to_wsgi parses them)
    public = current_app.extensions["tessera.conf"].public_endpoint
    root = (public or request.url_root).rstrip("/")
    body = {
        "versions": [
            {"id": f"v{v}", "status": status, "links": [{"rel": "self", "href": f"{root}/v2/"}]}
            for v, status in _listed_versions(
                node_cache() is not None,
                bool(enabled_backends(current_app.extensions["tessera.conf"])),
            )
        ]
    }
    if current_app.extensions["tessera.conf"].enable_v1_api:  # after v2's, as Glance Queens
        v1_href = f"{root}/v1/"
        body["versions"] += [
            {"id": f"v{v}", "status": "DEPRECATED", "links": [{"rel": "self", "href": v1_href}]}
            for v in V1_VERSIONS
        ]
    return body


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
