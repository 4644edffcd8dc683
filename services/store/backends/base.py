"""The store backend contract, modelled on glance_store but smaller.

A backend moves bytes and nothing else: hashing, size caps and format inspection happen
once, in services/store/pipeline.py, around the stream a backend reads. Every backend is
a ``StoreBackend`` (checked with ``isinstance`` in its tests); every writable one passes
the shared contract tests, ``WritableBackendContract`` in tests/unit/store/contract.py.

Rules every backend keeps:
- Its optional capabilities are declared as class attributes (``writable``,
  ``local_files``), never found out by probing for methods: a caller reads the
  declaration before it uses what the capability promises.
- ``add`` consumes the whole iterator or raises; a partial write is always removed
  before the exception leaves ``add``.
- Location URIs never embed credentials (Swift locations name the container and object;
  the credentials come from configuration).
- Failures are the typed exceptions imported below (services/common/errors.py, so they
  cross RPC and the data port by name), never a library's own exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

# The typed errors of the contract live with the others that cross RPC and HTTP.
from services.common.errors import (  # noqa: F401 - re-exported for backends
    DataNotFound,
    ImageTooLarge,
    InvalidImageData,
    SizeMismatch,
    StorageFull,
    StoreUnavailable,
)


@dataclass(frozen=True)
class StoredImage:
    location: str
    size: int
    metadata: dict = field(default_factory=dict)
    #: what tells the data this ``add`` wrote from a later write's, for ``discard``: the
    #: file store's stat of its file (None where the store marks its data itself, as
    #: Swift with the upload id header)
    written: object = field(default=None, compare=False, repr=False)


@runtime_checkable
class StoreBackend(Protocol):
    #: URI schemes of the locations this backend reads (``file``, ``http``/``https``, ``swift``).
    schemes: tuple[str, ...]
    #: Whether ``add``, ``delete`` and ``delete_partial`` act (http is read-only:
    #: ``add`` refuses, the others do nothing).
    writable: bool
    #: Whether the data at a location is a file on this host that ``local_path`` names,
    #: so the data port sends it with ``sendfile`` instead of reading it through ``get``.
    local_files: bool

    def add(
        self,
        image_id: str,
        chunks: Iterable[bytes],
        size: int | None,
        upload_id: str,
        confirm: Callable[[], object] | None = None,
    ) -> StoredImage:
        """Store the bytes of ``chunks`` (``size`` if known, else until exhausted).
        Whatever is written before the data is complete is named after ``upload_id``, so
        that ``delete_partial`` can find it when the writing process died.

        ``confirm`` is called once the data is complete, just before it takes the
        image's name (the registry renews the upload's lease, or refuses it): an upload
        given up meanwhile raises there, and its data never replaces the image's."""

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes at ``location`` from ``offset``, ``length`` of them (or to the end)."""

    def size(self, location: str) -> int:
        """The number of bytes at ``location``."""

    def local_path(self, location: str) -> Path:
        """The file holding the data at ``location``; only for a backend that declares
        ``local_files`` (the others raise NotImplementedError)."""

    def delete(self, location: str) -> None:
        """Remove the data at ``location``; a location already gone is not an error."""

    def delete_partial(self, image_id: str, upload_id: str) -> None:
        """Remove what an interrupted ``add`` of ``upload_id`` may have left behind (the
        process that ran it died before it could)."""

    def discard(self, image_id: str, upload_id: str, stored: StoredImage) -> None:
        """Remove the data ``add`` stored, unless another write of the image has taken
        its place since (the registry refused this upload's completion: a later upload
        may own the name now)."""
