"""The data port's error answers: each typed error with its own status (the one table in
services/common/errors.py) and a JSON body naming it, never a blanket 400."""

from __future__ import annotations

import json

import pytest

from services.common import errors
from services.store.dataport import DataHandler


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
