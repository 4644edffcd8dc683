"""The legacy Tasks API (``/v2/tasks``, admin-only by default through
``tasks_api_access``, as Glance) and the task schemas."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from flask import Blueprint, jsonify, request

from services.api import schemas
from services.api.errors import error_response
from services.api.gateway import call, conf, json_body
from services.common.errors import BadRequest
from services.common.image_attributes import UUID_PATTERN

bp = Blueprint("tasks", __name__)


@bp.post("/v2/tasks")
def create_task():
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    record = call("registry", "create_task", body, conf().glance_store.default_store)
    response = jsonify(record)
    response.status_code = 201
    response.headers["Location"] = f"/v2/tasks/{record['id']}"
    return response


def _list_query() -> dict:
    args = request.args
    query = {k: args[k] for k in ("status", "type", "sort_key", "sort_dir") if k in args}
    if "limit" in args:
        try:
            limit = int(args["limit"])
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise BadRequest("limit param must be positive")
        query["limit"] = limit
    if "marker" in args:
        if not re.fullmatch(UUID_PATTERN.strip("^$"), args["marker"]):
            raise BadRequest("Invalid marker format")
        query["marker"] = args["marker"]
    return query


@bp.get("/v2/tasks")
def list_tasks():
    result = call("registry", "list_tasks", _list_query())
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "marker"]
    body = {
        "tasks": result["tasks"],
        "first": "/v2/tasks" + (f"?{urlencode(params)}" if params else ""),
        "schema": "/v2/schemas/tasks",
    }
    if result["more"] and result["tasks"]:
        body["next"] = "/v2/tasks?" + urlencode(params + [("marker", result["tasks"][-1]["id"])])
    return jsonify(body)


@bp.get("/v2/tasks/<task_id>")
def show_task(task_id):
    return jsonify(call("registry", "get_task", task_id))


@bp.delete("/v2/tasks/<task_id>")
def delete_task(task_id):
    return error_response(
        405,
        "This operation is currently not permitted on Glance Tasks. They are auto deleted "
        "after reaching the time based on their expires_at property.",
        {"Allow": "GET"},
    )


@bp.get("/v2/schemas/task")
def task_schema():
    return jsonify(schemas.TASK_SCHEMA)


@bp.get("/v2/schemas/tasks")
def tasks_schema():
    return jsonify(schemas.tasks_schema())
