"""Streaming disk-image format inspection, as Glance 33 does it on upload (CVE-2024-32498).

The store feeds every chunk of an upload to a ``FormatInspector`` in the same pass in
which it hashes and writes them. The inspection itself is oslo.utils' ``format_inspector``
(the library Glance uses): its ``InspectWrapper`` runs every format's inspector over the
stream, each keeping only the few header regions it needs (about 1 MiB in all, 3 MiB
for a qcow2 with 2 MiB clusters, whatever the image size), and Tessera's add-on checks
(``format_checks``) cover what the library does not look at.

When the stream ends, ``finish`` decides as Glance 33's ``ImageProxy.set_data`` does:

- only ``container_format=bare`` uploads are inspected (ova, ovf, docker ... are not);
- the content's format must be the declared ``disk_format``; content of another format
  declared ``raw`` is accepted (Glance: "we can't inspect it, so we allow it") with the
  byte size as ``virtual_size``; an ISO carrying a GPT is an ISO; two formats at once are
  refused; plain content declared as a format the library does not know (ami, aki, ari,
  ploop) is not checked;
- whatever format the content is, its safety checks must pass: so a qcow2 with a backing
  file is refused even when declared ``raw``, and QED content is always refused;
- ``[image_format] require_image_format_match`` (default true) makes a mismatch fatal;
  ``gpt_safety_checks_nonfatal`` lists GPT/MBR checks that only warn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from oslo_utils.imageutils import format_inspector as fi

from services.store.backends.base import InvalidImageData
from services.store.format_checks import AddOnChecks

log = logging.getLogger(__name__)

#: disk_format values whose content the library can recognise.
INSPECTABLE_FORMATS = tuple(fi.ALL_FORMATS)

#: The library sees the stream's first MiB as one piece, whatever the socket's reads were,
#: because its answers depend on where chunks end: some regions are complete at a minimum
#: length and keep what the completing chunk held (a text vmdk descriptor cut into small
#: reads passes for raw content), and the vhdx inspector misses the virtual size if the
#: chunk that ends the header (at 256 KiB) also holds the metadata table (at 1 MiB or
#: beyond, 1 MiB-aligned by the format). After the head, chunks of any size are fine.
HEAD_SIZE = fi.VMDKInspector.DESC_MAX_SIZE + 1


@dataclass(frozen=True)
class FormatPolicy:
    """Glance's ``[image_format]`` options that govern upload inspection."""

    require_image_format_match: bool = True
    gpt_safety_checks_nonfatal: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, conf) -> FormatPolicy:
        options = conf.image_format
        return cls(
            require_image_format_match=options.require_image_format_match,
            gpt_safety_checks_nonfatal=frozenset(options.gpt_safety_checks_nonfatal),
        )


class _Pushed:
    """The source InspectWrapper reads from: whatever chunk was pushed last. The wrapper
    is made for pulling from a file; the store pushes chunks as they arrive."""

    __slots__ = ("chunk",)

    def __init__(self):
        self.chunk = b""

    def read(self, size: int):
        chunk, self.chunk = self.chunk, b""
        return chunk


class FormatInspector:
    """Inspect an upload chunk by chunk; ``finish`` gives the virtual size or raises
    InvalidImageData."""

    def __init__(
        self,
        disk_format: str | None,
        container_format: str | None = "bare",
        policy: FormatPolicy = FormatPolicy(),
    ):
        self.disk_format = disk_format
        self.policy = policy
        self.found: str | None = None  # the format the content has, once finished
        self.inspected = disk_format is not None and container_format == "bare"
        if self.inspected:
            self._head: bytearray | None = bytearray()
            self._source = _Pushed()
            self._wrapper = fi.InspectWrapper(self._source)
            self._add_ons = AddOnChecks()

    def feed(self, chunk) -> None:
        """Look at the next chunk (bytes or a memoryview; copied where a region needs it,
        so the caller may reuse its buffer)."""
        if not self.inspected or not len(chunk):
            return
        if self._head is None:
            self._push(chunk)
            return
        taken = HEAD_SIZE - len(self._head)  # the part of this chunk that ends the head
        if not self._head and len(chunk) >= HEAD_SIZE:
            head = chunk[:HEAD_SIZE]  # a view if chunk is one: no copy
        else:
            self._head += chunk[:taken]
            if len(self._head) < HEAD_SIZE:
                return
            head = self._head
        self._head = None
        self._push(head)
        if len(chunk) > taken:
            self._push(chunk[taken:])

    def _push(self, chunk) -> None:
        self._source.chunk = chunk
        self._wrapper.read(len(chunk))
        self._add_ons.feed(chunk)

    def finish(self) -> int | None:
        """The image's virtual size (None when unknown or not inspected), or
        InvalidImageData if the content may not be stored under this disk_format."""
        if not self.inspected:
            return None
        if self._head:
            self._push(self._head)
        self._wrapper.close()
        virtual_size, inspector = 0, None
        try:
            inspector = self._content_format()
            found = self.found = str(inspector)
            if found == self.disk_format:
                virtual_size = inspector.virtual_size
            elif found == "raw" and self.disk_format not in INSPECTABLE_FORMATS:
                log.info("disk_format %s is not an inspectable type", self.disk_format)
            elif self.disk_format == "raw":
                log.warning("Image claims disk_format raw but is actually %s", found)
                virtual_size = inspector.actual_size
            else:
                raise fi.ImageFormatError(
                    f"Image disk_format {self.disk_format} does not match stream data {found}"
                )
            self._safety_check(inspector)
        except fi.ImageFormatError as exc:
            if self.policy.require_image_format_match:
                raise InvalidImageData(str(exc)) from None
            log.warning("Image format %s did not match (%s)", self.disk_format, exc)
        except fi.SafetyCheckFailed as exc:
            self._judge(inspector, exc.failures)
        except Exception:
            log.exception("Unable to determine the stream's format")
            if self.policy.require_image_format_match:
                raise InvalidImageData("Image format inspection failed") from None
        return virtual_size or None

    def _content_format(self) -> fi.FileInspector:
        matched = {str(inspector): inspector for inspector in self._wrapper.formats}
        if matched.keys() == {"iso", "gpt"}:
            return matched["iso"]  # a bootable ISO may carry a GPT in front
        if len(matched) > 1:  # a header hidden in another: the library's error, sorted
            raise fi.ImageFormatError(f"Multiple formats detected: {','.join(sorted(matched))}")
        return self._wrapper.format

    def _safety_check(self, inspector: fi.FileInspector) -> None:
        """The library's checks for the format found, then Tessera's add-on for it."""
        failures = {}
        try:
            inspector.safety_check()
        except fi.SafetyCheckFailed as exc:
            failures.update(exc.failures)
        failures.update(self._add_ons.check(str(inspector)))
        if failures:
            raise fi.SafetyCheckFailed(failures)

    def _judge(self, inspector: fi.FileInspector, failures: dict) -> None:
        fatal = failures.keys() - self.policy.gpt_safety_checks_nonfatal
        if self.disk_format in ("aki", "ari"):
            fatal.discard("mbr")  # kernels and ramdisks may carry an invalid MBR on purpose
        if inspector.NAME == "gpt" and not fatal:
            log.warning("Non-fatal GPT safety check failures: %s", ", ".join(failures))
            return
        reasons = "; ".join(f"{failures[name]}" for name in sorted(failures))
        raise InvalidImageData(f"Image failed safety checks ({inspector}: {reasons}).")
