"""Typed errors that cross RPC.

Services raise these; nameko serialises them into the reply and both nameko callers
(``deserialize_to_instance``) and the gateway's RPC client turn them back into the same
class. Each class maps to an HTTP status in one table, ``STATUS_BY_ERROR`` below, which the
gateway (services/api/errors.py) and the store's data port (services/store/dataport.py) use.
"""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance

BY_NAME: dict[str, type[TesseraError]] = {}


def _typed(cls):
    """Register an error class so it survives an RPC round trip by name."""
    BY_NAME[cls.__name__] = cls
    return deserialize_to_instance(cls)


@_typed
class TesseraError(Exception):
    """Base of every error a Tessera service reports on purpose."""

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@_typed
class BadRequest(TesseraError):
    """The request is malformed or names something invalid."""


@_typed
class NotFound(TesseraError):
    """The thing asked for does not exist (or the caller may not see it)."""


@_typed
class Forbidden(TesseraError):
    """The caller may not do this."""


@_typed
class Gone(TesseraError):
    """The thing was deleted while the request was under way."""


@_typed
class Conflict(TesseraError):
    """The request conflicts with the current state."""


@_typed
class Duplicate(Conflict):
    """Something with this identity exists already."""


@_typed
class InvalidTransition(Conflict):
    """A status change that the state machine does not allow, or a lost race."""


@_typed
class QuotaExceeded(TesseraError):
    """A configured limit would be exceeded."""


@_typed
class ServiceUnavailable(TesseraError):
    """A service or the broker could not be reached in time."""


# --- image data errors (the store backend contract, services/store/backends/base.py)


@_typed
class StorageFull(QuotaExceeded):
    """The backend has no space left for the image (413)."""


@_typed
class StoreUnavailable(ServiceUnavailable):
    """The backend cannot be reached or refused access (503)."""


@_typed
class DataNotFound(NotFound):
    """The location names no data (any more)."""


@_typed
class SizeMismatch(BadRequest):
    """The bytes received differ from the size declared for them (400)."""


@_typed
class ImageTooLarge(QuotaExceeded):
    """The image is larger than image_size_cap or the caller's storage quota (413)."""


@_typed
class InvalidImageData(BadRequest):
    """The bytes are not a safe image of the declared disk format (400)."""


#: The one table from typed errors to HTTP statuses: the first class that matches wins,
#: so a subclass with a status of its own comes before its base.
STATUS_BY_ERROR: list[tuple[type[Exception], int]] = [
    (InvalidImageData, 415),  # Glance 33 answers refused image content so
    (BadRequest, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),  # also Duplicate and InvalidTransition
    (Gone, 410),
    (QuotaExceeded, 413),  # also StorageFull and ImageTooLarge
    (ServiceUnavailable, 503),  # also StoreUnavailable
]


def status_for(exc: Exception, table: list[tuple[type[Exception], int]] = STATUS_BY_ERROR) -> int:
    """The HTTP status of a typed error (500 for anything the table does not name)."""
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return 500


def from_remote(exc_type: str, message: str) -> TesseraError | None:
    """The typed error a remote reply names, or None for an unexpected error."""
    cls = BY_NAME.get(exc_type)
    return cls(message) if cls else None


def failure_message(exc: BaseException) -> str:
    """Why a piece of long work failed, as a task's message: a Tessera error's own words,
    any other error's type too (a bare ``OSError`` message says little alone)."""
    return str(exc) if isinstance(exc, TesseraError) else f"{type(exc).__name__}: {exc}"
