"""Keystone mode: keystonemiddleware's auth_token in front of the API, configured from
the ``[keystone_authtoken]`` section of the same config file, exactly as Glance's
install guide writes it (``memcached_servers`` included: python-memcached is a runtime
dependency). Version discovery (``/`` and ``/versions``) stays open, as in Glance, so
that clients can find the API before they hold a token.

Whatever auth_token answers on its own reaches the client in the API's JSON error
shape: an exception it raises (a broken token cache, a bug) is a JSON 500 and is
logged, and its own HTML errors (503 when Keystone cannot be reached) become JSON."""

from __future__ import annotations

import json
import logging

from keystonemiddleware import auth_token

from services.api.errors import TITLES

log = logging.getLogger(__name__)

UNAUTHENTICATED_PATHS = ("/", "/versions")
MESSAGES = {
    500: "The image service failed to complete the request; the error has been logged.",
    503: "The Keystone service is temporarily unavailable.",
}
#: Headers of auth_token's own error answers kept when the body is rewritten.
KEPT_HEADERS = ("www-authenticate", "retry-after")


def json_error(start_response, code: int, message: str, headers=(), exc_info=None) -> list:
    body = json.dumps(
        {"error": {"code": code, "title": TITLES.get(code, "Error"), "message": message}}
    ).encode()
    start_response(
        f"{code} {TITLES.get(code, 'Error')}",
        [
            *headers,
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ],
        exc_info,
    )
    return [body]


def wrap_with_auth_token(wsgi_app, conf):
    protected = auth_token.AuthProtocol(wsgi_app, {"oslo_config_config": conf})

    def dispatch(environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        if path.rstrip("/") in ("", "/versions"):
            return wsgi_app(environ, start_response)
        not_json: dict = {}

        def checking_start_response(status, headers, exc_info=None):
            code = int(status.split(" ", 1)[0])
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
            if code >= 400 and not content_type.startswith("application/json"):
                # auth_token's own webob error page (the API's errors are all JSON)
                not_json.update(code=code, headers=headers)
                return lambda _data: None
            return start_response(status, headers, exc_info)

        try:
            body = protected(environ, checking_start_response)
        except Exception:  # noqa: BLE001 - anything auth_token raises is our 500
            log.exception("keystonemiddleware auth_token failed")
            return json_error(start_response, 500, MESSAGES[500])
        if not not_json:
            return body
        if hasattr(body, "close"):
            body.close()
        code = not_json["code"]
        kept = [(k, v) for k, v in not_json["headers"] if k.lower() in KEPT_HEADERS]
        return json_error(start_response, code, MESSAGES.get(code, TITLES.get(code, "Error")), kept)

    return dispatch
