"""Request-scoped helpers every blueprint uses: the caller's context, the config, the
RPC client, the JSON body and text taken from the URL path."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from flask import current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from services.api.errors import UnsupportedMediaType
from services.common.errors import BadRequest
from services.common.policy import Policy

MAX_JSON_BODY = 1 << 20  # metadata bodies only; image bytes never go through here
MAX_JSON_DEPTH = 32  # no Image API body comes near it; deeper ones are refused (400)
READ_BLOCK = 64 << 10
DISCARD_BEFORE_REFUSAL = 8 << 20  # read past the limit (and dropped) before a 413
UNDECODABLE_URL = (
    "Error decoding your request. Either the URL or the request body contained "
    "characters that could not be decoded by Glance"
)


def conf():
    return current_app.extensions["tessera.conf"]


def policy() -> Policy:
    """The gateway's own policy checks (most are the registry's), built on first use:
    the cache API, the stores' detail."""
    extensions = current_app.extensions
    if "tessera.policy" not in extensions:
        extensions["tessera.policy"] = Policy(conf())
    return extensions["tessera.policy"]


def call(service: str, method: str, *args, **kwargs):
    """One RPC to ``service.method`` on behalf of the caller."""
    return current_app.extensions["tessera.rpc"].call(service, method, g.context, *args, **kwargs)


def json_body():
    """The request's JSON document, read within bounds.

    - A body declared as something other than JSON is refused (415). Glance reads any
      declared type as JSON; a body with no Content-Type is still read as JSON here too.
    - At most ``MAX_JSON_BODY`` bytes are kept, chunked or not, read block by block: a
      longer body is refused (413, what oslo.middleware's sizelimit answers for other
      OpenStack APIs; Glance itself reads any size) without being held in memory.
    - It must be UTF-8 JSON nested at most ``MAX_JSON_DEPTH`` deep, and no string in it
      (object keys included) may hold NUL or a lone surrogate (400)."""
    mimetype = request.mimetype
    if mimetype and "json" not in mimetype.partition("/")[2]:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {mimetype}: the request body must be JSON "
            f"(application/json)."
        )
    raw = _read_at_most(MAX_JSON_BODY)
    if not raw:
        raise BadRequest("Body expected in request.")
    try:
        body = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise BadRequest(_too_deep()) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Malformed JSON in request body: {exc}") from None
    check_document(body)
    return body


def _too_deep() -> str:
    return f"The JSON in the request body is nested deeper than {MAX_JSON_DEPTH} levels."


def _read_at_most(limit: int) -> bytes:
    """The whole body if it is at most ``limit`` bytes, else 413, having kept no more
    than ``limit + 1`` bytes of it in memory."""
    too_large = f"Request body is larger than {limit} bytes."
    length = request.content_length
    if length is not None and length > limit:
        if length <= limit + DISCARD_BEFORE_REFUSAL:
            _discard(request.stream, DISCARD_BEFORE_REFUSAL)
        raise RequestEntityTooLarge(too_large)
    stream = request.stream
    blocks, total = [], 0
    while True:
        block = stream.read(min(READ_BLOCK, limit + 1 - total))
        if not block:
            return b"".join(blocks)
        blocks.append(block)
        total += len(block)
        if total > limit:
            blocks.clear()
            _discard(stream, DISCARD_BEFORE_REFUSAL)
            raise RequestEntityTooLarge(too_large)


def _discard(stream, most: int) -> None:
    """Read and drop up to ``most`` bytes of what is left of the body. gunicorn drains
    only 64 KiB after the answer before it closes, and a close with the client's bytes
    still unread is a reset that can destroy the answer on its way: a body a little over
    the limit is read to its end, so its client reads the 413."""
    left = most
    while left > 0:
        block = stream.read(min(READ_BLOCK, left))
        if not block:
            return
        left -= len(block)


def check_document(document) -> None:
    """One pass over a decoded JSON document, level by level (no recursion): refuses
    (400) nesting deeper than ``MAX_JSON_DEPTH`` and strings holding NUL or a lone
    surrogate. It costs a few microseconds for a create or patch body and about half of
    ``json.loads`` for a 1 MiB body of 10,000 properties (bench: ~8 ms against ~16 ms)."""
    level, depth = [document], 0
    while level:
        depth += 1
        below = []
        for node in level:
            if isinstance(node, dict):
                for key, value in node.items():
                    _check_text(key)
                    if isinstance(value, str):
                        _check_text(value)
                    elif isinstance(value, (dict, list)):
                        below.append(value)
            elif isinstance(node, list):
                for value in node:
                    if isinstance(value, str):
                        _check_text(value)
                    elif isinstance(value, (dict, list)):
                        below.append(value)
            elif isinstance(node, str):
                _check_text(node)
        if below and depth >= MAX_JSON_DEPTH:
            raise BadRequest(_too_deep())
        level = below


def _check_text(text: str, what: str = "The request body") -> None:
    # ``in`` and a strict encode run in C; ``isascii`` is a flag lookup. (A regular
    # expression over the same text costs ten times as much.)
    if "\x00" in text:
        raise BadRequest(f"{what} contains a NUL character, which cannot be stored.")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest(
                f"{what} contains a lone surrogate (U+{ord(text[exc.start]):04X}), "
                f"which cannot be stored."
            ) from None


def check_url() -> None:
    """The URL's path and query must be UTF-8 once percent-decoded (400 with Glance's
    message): werkzeug hands U+FFFD in place of each byte that is not, so a view could
    not tell, and a tag or a filter would silently become another."""
    environ = request.environ
    try:
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        unquote_to_bytes(environ.get("QUERY_STRING", "").encode("latin-1")).decode("utf-8")
    except UnicodeError:
        raise BadRequest(UNDECODABLE_URL) from None


def path_text(value: str, what: str) -> str:
    """A piece of the URL path (a tag, a member id) as the view got it, checked: the URL
    must be UTF-8 (``check_url``, which the app also runs before every request) and
    ``value`` may not hold NUL (400)."""
    check_url()
    _check_text(value, f"The {what}")
    return value
