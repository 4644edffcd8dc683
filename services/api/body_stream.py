"""Reading a large request body with as few copies as the server allows.

gunicorn's ``wsgi.input.read(n)`` gathers ``n`` bytes through a BytesIO and slices them
(four copies of every byte); for an image upload that is most of the gateway's CPU.
When the body has a known length, this reads straight from gunicorn's socket reader
instead: one ``recv`` (one copy) per block, and the reader's bookkeeping kept right.
Any other server or body (chunked) falls back to plain ``read``."""

from __future__ import annotations

from collections.abc import Callable

try:  # the gateway runs under gunicorn; tests may drive the app without it
    from gunicorn.http.body import Body, LengthReader
except ImportError:  # pragma: no cover
    Body = LengthReader = None


def block_reader(environ: dict, fallback: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """A ``read(max_bytes)`` for the request body, returning b"" at its end."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    if (
        Body is None
        or not isinstance(body, Body)
        or not isinstance(reader, LengthReader)
        or body.buf.tell()
    ):
        return fallback

    def read(max_bytes: int) -> bytes:
        if reader.length <= 0:
            return b""
        want = min(max_bytes, reader.length)
        data = reader.unreader.read(None, read_ahead=want)  # what is buffered, or one recv
        if len(data) > want:
            reader.unreader.unread(data[want:])
            data = data[:want]
        reader.length -= len(data)
        return data

    return read
