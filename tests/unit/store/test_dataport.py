"""The data port's error answers: each typed error with its own status (the one table in
services/common/errors.py) and a JSON body naming it, never a blanket 400."""

from __future__ import annotations

import json

import pytest

from services.common import errors
from services.store.dataport import DataHandler, body_readinto


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.StoreUnavailable("the backend is down"), 503),
        (errors.ServiceUnavailable("the registry is down"), 503),
        (errors.ImageTooLarge("over image_size_cap"), 413),
        (errors.StorageFull("disk full"), 413),
        (errors.QuotaExceeded("over quota"), 413),
        (errors.Gone("deleted meanwhile"), 410),
        (errors.Conflict("lease expired"), 409),
        (errors.InvalidTransition("lost a race"), 409),
        (errors.NotFound("unknown transfer URL"), 404),
        (errors.DataNotFound("no data"), 404),
        (errors.Forbidden("no"), 403),
        (errors.SizeMismatch("short body"), 400),
        (errors.InvalidImageData("not a qcow2"), 415),
        (errors.BadRequest("bad"), 400),
    ],
)
def test_typed_errors_answer_their_own_status(exc, status):
    response = DataHandler("GET", "/x").response_from_exception(exc)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data())
    assert body == {"exc_type": type(exc).__name__, "value": str(exc)}
    # and the gateway turns the name back into the same error
    assert type(errors.from_remote(body["exc_type"], body["value"])) is type(exc)


def test_unexpected_errors_are_500(caplog):
    handler = DataHandler("GET", "/x")
    assert handler.response_from_exception(ValueError("bug")).status_code == 500
    assert handler.response_from_exception(errors.TesseraError("untyped")).status_code == 500
    assert "data port request failed" in caplog.text


class _BrokenSocketFile:
    def readinto(self, buffer):
        raise ConnectionResetError(104, "Connection reset by peer")


class _Body:
    """eventlet's wsgi.Input as body_readinto uses it."""

    def __init__(self, chunked: bool):
        self.chunked_input = chunked
        self.content_length = None if chunked else 100
        self.position = 0
        self.rfile = _BrokenSocketFile()

    def read(self, size):
        if size and self.chunked_input:
            from eventlet.wsgi import ChunkReadError

            raise ChunkReadError("invalid chunk length")
        return b""


@pytest.mark.parametrize("chunked", [False, True])
def test_a_sender_gone_mid_body_is_a_typed_400(chunked):
    """A reset socket or a broken chunk is the client's 400 (no traceback in the store)."""
    readinto = body_readinto({"eventlet.input": _Body(chunked)})
    with pytest.raises(errors.BadRequest, match="broke off"):
        readinto(memoryview(bytearray(16)))
