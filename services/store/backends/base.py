"""The store backend contract, modelled on glance_store but smaller.

A backend moves bytes and nothing else: hashing, size caps and format inspection happen
once, in services/store/pipeline.py, around the stream a backend reads. Every backend
passes the shared contract tests in tests/unit/store/test_backend_contract.py.

Rules every backend keeps:
- ``add`` consumes the whole iterator or raises; a partial write is always removed
  before the exception leaves ``add``.
- Location URIs never embed credentials (Swift locations name the container and object;
  the credentials come from configuration).
- Failures are the typed exceptions below, never a library's own exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from services.common.errors import (
    BadRequest,
    NotFound,
    QuotaExceeded,
    ServiceUnavailable,
    _typed,
)


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


@dataclass(frozen=True)
class StoredImage:
    location: str
    size: int
    metadata: dict = field(default_factory=dict)


@runtime_checkable
class StoreBackend(Protocol):
    #: URI schemes of the locations this backend reads (``file``, ``http``/``https``, ``swift``).
    schemes: tuple[str, ...]
    #: Whether ``add`` and ``delete`` are supported (http is read-only).
    writable: bool

    def add(self, image_id: str, chunks: Iterable[bytes], size: int | None,
            upload_id: str) -> StoredImage:
        """Store the bytes of ``chunks`` (``size`` if known, else until exhausted).
        Whatever is written before the data is complete is named after ``upload_id``, so
        that ``delete_partial`` can find it when the writing process died."""

    def get(self, location: str, offset: int = 0,
            length: int | None = None) -> Iterator[bytes]:
        """The bytes at ``location`` from ``offset``, ``length`` of them (or to the end)."""

    def size(self, location: str) -> int:
        """The number of bytes at ``location``."""

    def delete(self, location: str) -> None:
        """Remove the data at ``location``; a location already gone is not an error."""

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        """Remove what an interrupted ``add`` of ``upload_id`` may have left behind (the
        process that ran it died before it could)."""
