"""``/v2/images/{id}/members``: sharing images with other projects."""

from __future__ import annotations

from flask import Blueprint, jsonify

from services.api.gateway import call, json_body, path_text
from services.common.errors import BadRequest

bp = Blueprint("members", __name__)

STATUSES = ("pending", "accepted", "rejected")


def _field(name: str) -> str:
    body = json_body()
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise BadRequest(f"The request body must be a JSON object with a '{name}' string.")
    return value


@bp.get("/v2/images/<image_id>/members")
def list_members(image_id):
    return jsonify(
        {"members": call("registry", "list_members", image_id), "schema": "/v2/schemas/members"}
    )


@bp.post("/v2/images/<image_id>/members")
def add_member(image_id):
    return jsonify(call("registry", "add_member", image_id, _field("member")))


@bp.get("/v2/images/<image_id>/members/<member_id>")
def show_member(image_id, member_id):
    member_id = path_text(member_id, "member id")
    return jsonify(call("registry", "get_member", image_id, member_id))


@bp.put("/v2/images/<image_id>/members/<member_id>")
def update_member(image_id, member_id):
    member_id = path_text(member_id, "member id")
    status = _field("status")
    if status not in STATUSES:
        raise BadRequest(f"Invalid status: {status}; use one of {', '.join(STATUSES)}.")
    return jsonify(call("registry", "set_member_status", image_id, member_id, status))


@bp.delete("/v2/images/<image_id>/members/<member_id>")
def remove_member(image_id, member_id):
    member_id = path_text(member_id, "member id")
    call("registry", "remove_member", image_id, member_id)
    return "", 204
