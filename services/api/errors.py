"""The one table from errors to HTTP responses, and the JSON error body.

Every error leaves the gateway as ``{"error": {"code": 404, "title": "Not Found",
"message": "..."}}`` with ``Content-Type: application/json`` (the OpenStack API error
shape, which python-glanceclient and openstacksdk both parse)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from services.api.rpc_client import RemoteServiceError
from services.common import errors

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def error_response(code: int, message: str, headers: dict | None = None):
    body = {"error": {"code": code, "title": TITLES.get(code, "Error"), "message": message}}
    response = jsonify(body)
    response.status_code = code
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


class Unauthorized(errors.TesseraError):
    """No valid identity came with the request."""


class RangeNotSatisfiable(errors.BadRequest):
    """A Range header no byte of the image satisfies (416)."""

    def __init__(self, message: str, size: int = 0):
        super().__init__(message)
        self.size = size


class UnsupportedMediaType(errors.TesseraError):
    """The request body's Content-Type is not one this call accepts."""

    def __init__(self, message: str, accepted: str = ""):
        super().__init__(message)
        self.accepted = accepted


class RequestTimeout(errors.BadRequest):
    """The client stopped sending its request body for longer than the gateway waits
    (408; the gateway reads nothing more from that connection)."""


#: The common table (services/common/errors.py) and the gateway's own errors.
STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (Unauthorized, 401),
    (RequestTimeout, 408),
    *errors.STATUS_BY_ERROR,
]


def status_for(exc: errors.TesseraError) -> int:
    return errors.status_for(exc, STATUS_BY_ERROR)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(UnsupportedMediaType)
    def _unsupported(exc: UnsupportedMediaType):
        return error_response(
            415, exc.message, {"Accept-Patch": exc.accepted} if exc.accepted else None
        )

    @app.errorhandler(RangeNotSatisfiable)
    def _range(exc: RangeNotSatisfiable):
        return error_response(416, exc.message, {"Content-Range": f"bytes */{exc.size}"})

    @app.errorhandler(errors.TesseraError)
    def _typed(exc: errors.TesseraError):
        return error_response(status_for(exc), exc.message)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        headers = (
            {"Allow": exc.valid_methods and ", ".join(exc.valid_methods)}
            if getattr(exc, "valid_methods", None)
            else None
        )
        return error_response(exc.code or 500, exc.description or exc.name, headers)

    @app.errorhandler(RemoteServiceError)
    def _remote(exc: RemoteServiceError):
        log.error("%s", exc)
        return error_response(
            500, "The image service failed to complete the request; the error has been logged."
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return error_response(
            500, "The image service failed to complete the request; the error has been logged."
        )
