"""Request-scoped helpers every blueprint uses: the caller's context, the config, the
RPC client and the JSON body."""

from __future__ import annotations

import json

from flask import current_app, g, request

from services.common.errors import BadRequest

MAX_JSON_BODY = 1 << 20  # metadata bodies only; image bytes never go through here


def conf():
    return current_app.extensions["tessera.conf"]


def call(service: str, method: str, *args, **kwargs):
    """One RPC to ``service.method`` on behalf of the caller."""
    return current_app.extensions["tessera.rpc"].call(service, method, g.context, *args, **kwargs)


def json_body():
    length = request.content_length
    if length is not None and length > MAX_JSON_BODY:
        raise BadRequest(f"Request body is larger than {MAX_JSON_BODY} bytes.")
    raw = request.get_data(cache=False)
    if not raw:
        raise BadRequest("Body expected in request.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc}") from None
