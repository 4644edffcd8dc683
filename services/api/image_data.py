"""``/v2/images/{id}/file``: upload and download. The gateway checks the request, asks a
store replica over RPC for a one-time URL on its data port and relays the bytes in large
blocks, never holding more than one block of an image in memory. A download from a file
store whose replica runs on this host is handed over as an open file instead and sent
from here (services/common/handoff.py)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, request
from werkzeug.http import parse_content_range_header, parse_range_header

from services.api.body_stream import (
    ClosingBody,
    SourceBroken,
    client_timeout,
    download_body,
    file_body,
    fill_body,
    forward_body,
)
from services.api.cache import node_cache
from services.api.errors import RangeNotSatisfiable, RequestTimeout, UnsupportedMediaType
from services.api.gateway import call, conf
from services.api.stores import requested_store
from services.cache.fill import Fill
from services.common import handoff
from services.common.errors import (
    BadRequest,
    DataNotFound,
    Forbidden,
    ImageTooLarge,
    ServiceUnavailable,
    SizeMismatch,
    StoreUnavailable,
    from_remote,
)
from services.common.notification_rules import sends

log = logging.getLogger(__name__)
bp = Blueprint("image_data", __name__)

BLOCK = 2 << 20
DATA_TIMEOUT = 300  # seconds a data-port hop may stay silent


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=DATA_TIMEOUT, blocksize=BLOCK
    )
    try:
        conn.connect()
    except OSError:
        raise ServiceUnavailable(
            "The store replica's data port could not be reached; try again later."
        ) from None
    return conn, parts.path


def _raise_store_error(resp: http.client.HTTPResponse) -> None:
    body = resp.read(1 << 16)
    try:
        error = json.loads(body)
        typed = from_remote(error.get("exc_type", ""), error.get("value", ""))
    except ValueError:
        typed = None
    if typed is not None:
        raise typed
    raise ServiceUnavailable("The store failed to move the image data; try again later.")


def _declared_size() -> int | None:
    header = request.headers.get("x-openstack-image-size")
    if header is None:
        return request.content_length
    try:
        size = int(header)
    except ValueError:
        raise BadRequest(f"Invalid x-openstack-image-size: {header}") from None
    if size < 0 or (request.content_length is not None and size != request.content_length):
        raise BadRequest("x-openstack-image-size does not match the request body's length.")
    return size


def _stalled(idle: float) -> RequestTimeout:
    """The error for a client that stopped sending its upload; nothing more is read from
    its connection (gunicorn then closes it after the answer instead of waiting for the
    rest of the body)."""
    sock = request.environ.get("gunicorn.socket")
    try:
        sock.shutdown(socket.SHUT_RD)
    except (AttributeError, OSError):
        pass
    return RequestTimeout(
        f"The upload sent no data for {idle:g} seconds (upload_idle_timeout); it was "
        f"aborted and the image is queued again."
    )


def _forward_upload(conn: http.client.HTTPConnection, size: int | None, stream=None) -> int:
    """Send the request body (or ``stream``, a file-like object read in its place) on to
    the store: the body spliced when its length is known, else in large blocks; the
    bytes sent. A client silent for ``upload_idle_timeout`` seconds is a 408."""
    idle = conf().upload_idle_timeout
    with client_timeout(request.environ, idle):
        return _forward_body(conn, size, stream, idle)


def _forward_body(conn, size: int | None, stream, idle: float) -> int:
    if size is not None and stream is None:
        try:
            sent = forward_body(request.environ, conn.sock, DATA_TIMEOUT, idle)
        except SourceBroken as exc:  # the client went away; the store sees a short body
            if exc.idle:
                raise _stalled(idle) from None
            raise BadRequest(f"The upload stream broke off: {exc}") from None
        if sent is not None:
            return sent
    read, sent = (stream or request.stream).read, 0
    while True:
        try:
            block = read(BLOCK)
        except BadRequest:  # a stream read in place of the body refused its content
            raise
        except TimeoutError:  # the client socket's timeout, set above
            raise _stalled(idle) from None
        except Exception as exc:  # noqa: BLE001 - any failure of the client's stream
            raise BadRequest(f"The upload stream broke off: {exc}") from None
        if not block:
            break
        sent += len(block)
        if size is not None and sent > size:
            raise SizeMismatch(f"The upload is longer than the declared {size} bytes.")
        conn.send(block if size is not None else b"%x\r\n%s\r\n" % (len(block), block))
    if size is None:
        conn.send(b"0\r\n\r\n")
    return sent


@bp.put("/v2/images/<image_id>/file")
def upload(image_id):
    return relay_upload(image_id, "open_upload")


def relay_upload(image_id: str, open_method: str):
    """Check an image data request and relay its body to the store replica that the
    RPC ``open_method`` (``open_upload``, or ``open_stage`` for glance-direct) opened
    the transfer on."""
    if request.mimetype != "application/octet-stream":
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {request.mimetype or '(none)'}; "
            f"image data must be application/octet-stream."
        )
    store_image_data(image_id, _declared_size(), open_method=open_method)
    return "", 204


def store_image_data(
    image_id: str, size: int | None, stream=None, open_method: str = "open_upload"
) -> None:
    """Move an upload's bytes to a store replica: the request body, or ``stream`` (a
    file-like object, e.g. v1's decoded base64 body) read in its place; ``size`` is the
    declared size (None: unknown), checked against the size cap first and by the store
    as the bytes arrive. ``open_method``: the store RPC that opens the transfer."""
    cap = conf().image_size_cap
    if size is not None and size > cap:
        # refused before any RPC or body read; gunicorn then reads at most a little of
        # the body and closes, so a client still sending gets this answer at once
        raise ImageTooLarge(
            f"The incoming image is too large: {size} bytes exceeds the image_size_cap "
            f"of {cap} bytes."
        )
    # X-Image-Meta-Store (400 for an unknown store); a stage's store is the import's
    store = requested_store() if open_method == "open_upload" else None
    args = (store,) if store is not None else ()
    session = call("store", open_method, image_id, size, *args)
    conn, path = _connect(session["url"])
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        conn.putheader("X-Openstack-Request-Id", g.request_id)
        conn.putheader("Content-Type", "application/octet-stream")
        if size is not None:
            conn.putheader("Content-Length", str(size))
        else:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        try:
            sent = _forward_upload(conn, size, stream)
        except OSError:
            sent = None  # the store stopped reading early; its answer says why
        except BadRequest:
            _end_early(conn)
            raise
        if sent is not None and size is not None and sent != size:
            # the client went away early: closing the hop makes the store give up
            raise SizeMismatch(f"The upload ended after {sent} of the declared {size} bytes.")
        resp = conn.getresponse()
        if resp.status != 204:
            _raise_store_error(resp)
    except OSError:
        # the store went away mid-transfer; it gives the upload up (lease) by itself
        raise ServiceUnavailable(
            "The store replica receiving the image data went away; "
            "the image is queued again, retry the upload."
        ) from None
    finally:
        conn.close()


def _end_early(conn: http.client.HTTPConnection) -> None:
    """End an upload the gateway refused midway: the store sees the body end short and
    gives the upload up (the image is queued again) before the client hears why."""
    try:
        conn.sock.shutdown(socket.SHUT_WR)
        conn.sock.settimeout(10)
        conn.getresponse().read(1 << 16)
    except (OSError, http.client.HTTPException):
        pass  # the store's lease gives the upload up anyway


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """(offset, length) of the single byte range a ``Range`` header asks for, as Glance
    answers: several ranges are a 400, a malformed or unsatisfiable one a 416."""
    if "," in header:
        raise BadRequest(
            "Requests with multiple ranges are not supported. "
            "You may make multiple single-range requests instead."
        )
    parsed = parse_range_header(header)
    if parsed is None or parsed.units != "bytes":
        raise RangeNotSatisfiable(f"Invalid Range header: {header}", size)
    start, stop = parsed.ranges[0]
    if start < 0:  # the last -start bytes
        start, stop = max(size + start, 0), size
    elif start >= size:
        raise RangeNotSatisfiable(
            f"Invalid start position in Range header. Start position MUST be in the "
            f"inclusive range [0, {size - 1}].",
            size,
        )
    else:
        stop = size if stop is None else min(stop, size)
    if stop <= start:  # nothing of an empty image
        raise RangeNotSatisfiable(f"Range {header} is not satisfiable for {size} bytes", size)
    return start, stop - start


def _parse_content_range(header: str, size: int) -> tuple[int, int]:
    """(offset, length) of a request's ``Content-Range`` (``bytes 0-99/*``), which Glance
    still accepts in place of ``Range`` for backward compatibility."""
    parsed = parse_content_range_header(header)
    if parsed is None or parsed.units != "bytes" or parsed.start is None:
        raise RangeNotSatisfiable(f"Invalid Content-Range header: {header}", size)
    if parsed.start >= size or parsed.stop > size:
        raise RangeNotSatisfiable(
            f"Content-Range {header} is not satisfiable for {size} bytes", size
        )
    return parsed.start, parsed.stop - parsed.start


def _requested_range(size: int) -> tuple[int, int] | None:
    """(offset, length) the request asks for, or None for the whole image."""
    if (header := request.headers.get("Range")) is not None:
        return _parse_range(header, size)
    if (header := request.headers.get("Content-Range")) is not None:
        return _parse_content_range(header, size)
    return None


@bp.get("/v2/images/<image_id>/file")
def download(image_id):
    image = call("registry", "get_image", image_id, "download_image")
    if image["status"] == "deactivated" and not g.context.is_admin:
        raise Forbidden(
            "The requested image has been deactivated. Image data download is forbidden."
        )
    return send_image_data(image_id, image)


def send_image_data(image_id: str, image: dict):
    """Answer a download of ``image``, the record the registry's ``get_image`` returned
    for ``download_image`` (so the caller may download it): from the node's cache or a
    store replica, honouring a ``Range``; 204 when it has no data. v1's GET calls this
    with the record it has already read, so a download asks the registry once."""
    if (
        image["status"] not in ("active", "deactivated")
        or not image["locations"]
        or image["size"] is None
    ):
        return "", 204
    size = image["size"]
    offset, length, status = 0, size, 200
    requested = _requested_range(size)
    if requested is not None:
        (offset, length), status = requested, 206
    headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
    if status == 206:
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{size}"
    elif image["checksum"]:
        headers["Content-MD5"] = image["checksum"]
    cache = node_cache()
    fill = None
    if cache is not None and image["status"] == "active":
        cached = cache.open_for(image)  # checked against the record just read
        if cached is not None:
            sent = [0]
            body = file_body(request.environ, cached, offset, length, BLOCK, DATA_TIMEOUT, sent)
            body = ClosingBody(body, _after_hit(cached, image, length, sent))
            return Response(body, status=status, headers=headers, direct_passthrough=True)
        if status == 200:
            fill = Fill.start(cache, image)  # None: another download is filling it
    try:
        return _from_store(image_id, image, offset, length, status, headers, fill)
    except BaseException:
        if fill is not None:
            fill.abort()
        raise


def _after_hit(fd: int, image: dict, length: int, sent: list):
    """What a download served from the cache does once its response is closed: close
    the file and, as the store does for the downloads it sends, have Glance's
    ``image.send`` sent (by the node's cache service, which has a notifier)."""
    notify = request.method == "GET" and sends(conf(), "image.send")
    rpc, context = current_app.extensions["tessera.rpc"], g.context

    def done() -> None:
        os.close(fd)
        if not notify:
            return
        payload = {
            "bytes_sent": sent[0],
            "image_id": image["id"],
            "owner_id": image["owner"],
            "receiver_tenant_id": context.project_id,
            "receiver_user_id": context.user_id,
        }
        try:
            rpc.call("cache", "image_sent", context, payload, sent[0] == length)
        except Exception as exc:  # noqa: BLE001 - the download is done either way
            log.warning("image %s: image.send was not sent: %s", image["id"], exc)

    return done


def _from_store(image_id, image, offset, length, status, headers, fill) -> Response:
    """Relay the bytes from a store replica, filling the node's cache on the way when
    ``fill`` is given."""
    locations = image["locations"]
    for number, location in enumerate(locations, 1):
        try:
            session = call(
                "store",
                "open_download",
                location["url"],
                offset,
                length if status == 206 else None,
                {"image_id": image_id, "owner_id": image["owner"]},  # for image.send
                location["metadata"].get("store"),
                len(locations) > 1,  # checked there: a missing copy falls back to the next
            )
            break
        except (DataNotFound, StoreUnavailable):
            if number == len(locations):
                raise
            log.warning("image %s: %s unreadable, trying another copy", image_id, location["url"])
    if fill is None and "handoff" in session:  # a replica on this host: services/common/handoff.py
        handed = handoff.ask(session["handoff"], session["token"], g.request_id, DATA_TIMEOUT)
        if handed is not None:
            sent = [0]
            body = file_body(request.environ, handed.fd, offset, length, BLOCK, DATA_TIMEOUT, sent)
            body = ClosingBody(body, lambda: handed.close(sent[0]))
            return Response(body, status=status, headers=headers, direct_passthrough=True)
    conn, path = _connect(session["url"])
    try:
        conn.request("GET", path, headers={"X-Openstack-Request-Id": g.request_id})
        resp = conn.getresponse()
    except OSError:
        conn.close()
        raise ServiceUnavailable(
            "The store replica holding the image data could not be reached; try again later."
        ) from None
    if resp.status != 200:
        try:
            _raise_store_error(resp)
        finally:
            conn.close()

    environ = request.environ  # the generator runs after the request context is gone

    def relay():
        try:
            if fill is None:
                yield from download_body(environ, resp, conn.sock, length, BLOCK, DATA_TIMEOUT)
                return
            yield from fill_body(environ, resp, conn.sock, length, BLOCK, DATA_TIMEOUT, fill)
            fill.finish_in_background()  # verified and published off the client's path
        finally:
            conn.close()

    body = relay() if fill is None else ClosingBody(relay(), fill.release)  # never sent
    return Response(body, status=status, headers=headers, direct_passthrough=True)
