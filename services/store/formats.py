"""Streaming disk-image format inspection: Glance's defence against CVE-2024-32498.

The store feeds every chunk of an upload to a ``FormatInspector`` in the same pass in
which it hashes and writes them. When the stream ends, ``finish`` says the image's
virtual size and raises ``InvalidImageData`` unless the content is a safe image of the
declared ``disk_format``: the right format, and no qcow2 backing or external data file,
no vmdk made of or pointing at other files, no vhd/vhdx parent disk.

Each format keeps only the few regions of the stream it needs (``_Capture``), learning
where later regions are from earlier ones, so memory stays at a few MiB at most whatever
the image size. Chunks may have any size, down to a single byte.
"""

from __future__ import annotations

import math
import struct
import uuid

from services.store.backends.base import InvalidImageData

#: Formats whose content is checked; any other disk_format (ami, aki, ari, ploop ...) is not.
CHECKED_FORMATS = ("raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso")

_MiB = 1024 * 1024


class _Capture:
    """The bytes ``[offset, offset + length)`` of the stream, gathered as chunks pass."""

    __slots__ = ("offset", "length", "data")

    def __init__(self, offset: int, length: int):
        self.offset, self.length, self.data = offset, length, bytearray()

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.length

    def feed(self, pos: int, chunk: bytes) -> None:
        """Take what is wanted from ``chunk``, which starts at stream offset ``pos``."""
        want = self.offset + len(self.data)
        if self.complete or not pos <= want < pos + len(chunk):
            return
        self.data += chunk[want - pos : self.offset + self.length - pos]


class _Format:
    """One disk format: the regions it reads, and what it makes of them."""

    name = ""
    header = (0, 512)

    def __init__(self):
        self._captures = {"header": _Capture(*self.header)}
        self._next = 0  # stream offset of the next byte wanted

    def feed(self, pos: int, chunk: bytes) -> None:
        if pos + len(chunk) <= self._next:
            return
        while True:
            pending = [c for c in self._captures.values() if not c.complete]
            for capture in pending:
                capture.feed(pos, chunk)
            if not any(c.complete for c in pending):
                break
            self._plan()  # a region is complete: it may point at others, maybe in this chunk
        wanted = [c.offset + len(c.data) for c in self._captures.values() if not c.complete]
        self._next = min(wanted, default=math.inf)

    @property
    def retained(self) -> int:
        return sum(len(c.data) for c in self._captures.values())

    def _plan(self) -> None:
        """Ask for the regions that the regions captured so far point at."""

    def _want(self, key: str, offset: int, length: int) -> None:
        if key not in self._captures:
            self._captures[key] = _Capture(offset, length)

    def _grow(self, key: str, length: int) -> None:
        """Extend a capture from the stream offset it has reached (a prefix grows on)."""
        capture = self._captures[key]
        capture.length = max(capture.length, length)

    def _partial(self, key: str) -> bytes:
        capture = self._captures.get(key)
        return bytes(capture.data) if capture else b""

    def _data(self, key: str) -> bytes | None:
        capture = self._captures.get(key)
        return bytes(capture.data) if capture and capture.complete else None

    def _need(self, key: str) -> bytes:
        data = self._data(key)
        if data is None:
            raise InvalidImageData(f"The {self.name} image is truncated or malformed.")
        return data

    def matches(self) -> bool:
        """Whether the content carries this format's signature."""
        raise NotImplementedError

    def inspect(self) -> int:
        """The virtual size of a matching image; raises InvalidImageData if it is unsafe."""
        raise NotImplementedError


class _Qcow2(_Format):
    name = "qcow2"
    DATA_FILE_EXTENSION = 0x44415441
    MAX_CLUSTER_BITS = 21  # 2 MiB, qemu's limit

    def matches(self) -> bool:
        return self._partial("header")[:4] == b"QFI\xfb"

    def _plan(self) -> None:
        # Header extensions live in the first cluster: capture all of it.
        header = self._data("header")
        if header and self.matches():
            cluster_bits = struct.unpack_from(">I", header, 20)[0]
            self._grow("header", 1 << min(max(cluster_bits, 9), self.MAX_CLUSTER_BITS))

    def inspect(self) -> int:
        cluster = self._partial("header")
        if len(cluster) < 512:
            raise InvalidImageData("The qcow2 image header is truncated.")
        version, backing_offset, backing_size = struct.unpack_from(">IQI", cluster, 4)
        if version not in (2, 3):
            raise InvalidImageData(f"qcow2 version {version} is not supported.")
        if backing_offset or backing_size:
            raise InvalidImageData("qcow2 images with a backing file are not allowed.")
        extensions_at = 72
        if version == 3:
            incompatible = struct.unpack_from(">Q", cluster, 72)[0]
            if incompatible & 0b100:
                raise InvalidImageData("qcow2 images with an external data file are not allowed.")
            extensions_at = max(struct.unpack_from(">I", cluster, 100)[0], 104)
        self._check_extensions(cluster, extensions_at)
        return struct.unpack_from(">Q", cluster, 24)[0]

    def _check_extensions(self, cluster: bytes, offset: int) -> None:
        while True:
            if offset + 8 > len(cluster):
                raise InvalidImageData("The qcow2 header extensions are truncated or malformed.")
            kind, length = struct.unpack_from(">II", cluster, offset)
            if kind == 0:
                return
            if kind == self.DATA_FILE_EXTENSION:
                raise InvalidImageData("qcow2 images with an external data file are not allowed.")
            offset += 8 + (length + 7) // 8 * 8


class _Vmdk(_Format):
    name = "vmdk"
    SELF_CONTAINED = ("monolithicSparse", "streamOptimized")
    DESCRIPTOR_AT = 512  # sector 1; qemu reads a parent hint from here whatever the header says
    QEMU_DESCRIPTOR_SIZE = 20 * 512
    MAX_DESCRIPTOR_SIZE = _MiB

    def matches(self) -> bool:
        head = self._partial("header")
        return head[:4] in (b"KDMV", b"COWD") or head.startswith(b"# Disk DescriptorFile")

    def _plan(self) -> None:
        header = self._data("header")
        if header and header[:4] == b"KDMV":
            sectors = struct.unpack_from("<Q", header, 36)[0]
            size = min(max(sectors * 512, self.QEMU_DESCRIPTOR_SIZE), self.MAX_DESCRIPTOR_SIZE)
            self._grow("header", self.DESCRIPTOR_AT + size)

    def inspect(self) -> int:
        head = self._partial("header")
        if head.startswith(b"# Disk DescriptorFile"):
            raise InvalidImageData(
                "vmdk images made of a descriptor file are not allowed: the descriptor "
                "references other files. Upload a monolithicSparse or streamOptimized vmdk."
            )
        if head[:4] == b"COWD":
            raise InvalidImageData("Legacy (version 1, COWD) vmdk images are not allowed.")
        if len(head) < 512:
            raise InvalidImageData("The vmdk image header is truncated.")
        capacity, _grain, descriptor_sector, descriptor_sectors = struct.unpack_from(
            "<QQQQ", head, 12
        )
        if descriptor_sector != 1 or not descriptor_sectors:
            raise InvalidImageData("The vmdk image has no embedded descriptor.")
        text = self._need("header")[self.DESCRIPTOR_AT :].split(b"\0", 1)[0]
        self._check_descriptor(text.decode("ascii", "replace"))
        return capacity * 512

    def _check_descriptor(self, text: str) -> None:
        create_type = ""
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "createType":
                create_type = value.strip().strip('"')
        if create_type not in self.SELF_CONTAINED:
            raise InvalidImageData(
                f"vmdk images of createType {create_type or 'unknown'!r} are not allowed: "
                "only monolithicSparse and streamOptimized are self-contained."
            )
        if "parentFileNameHint" in text:  # qemu looks for it anywhere in the text
            raise InvalidImageData("vmdk images with a parent (backing) file are not allowed.")
        extents = [
            line
            for line in text.splitlines()
            if line.split(None, 1)[:1] in (["RW"], ["RDONLY"], ["NOACCESS"])
        ]
        if len(extents) != 1:
            raise InvalidImageData("vmdk images must have exactly one extent.")


class _Vhd(_Format):
    """VHD: the footer is the last 512 bytes; dynamic disks also copy it at offset 0."""

    name = "vhd"
    DIFFERENCING = 4

    def __init__(self):
        super().__init__()
        self._tail = bytearray()

    def feed(self, pos: int, chunk: bytes) -> None:
        super().feed(pos, chunk)
        self._tail += chunk[-512:]
        del self._tail[:-512]

    @property
    def retained(self) -> int:
        return super().retained + len(self._tail)

    def _footer(self) -> bytes | None:
        head = self._partial("header")
        if head[:8] == b"conectix":
            return head
        return bytes(self._tail) if self._tail[:8] == b"conectix" else None

    def matches(self) -> bool:
        return self._footer() is not None

    def inspect(self) -> int:
        footer = self._footer()
        if len(footer) < 512:
            raise InvalidImageData("The vhd image footer is truncated.")
        current_size, _geometry, disk_type = struct.unpack_from(">QII", footer, 48)
        if disk_type == self.DIFFERENCING:
            raise InvalidImageData("vhd differencing images (with a parent disk) are not allowed.")
        return current_size


class _Vhdx(_Format):
    name = "vhdx"
    REGION_TABLE = (192 * 1024, 64 * 1024)
    METADATA_TABLE_SIZE = 64 * 1024
    METADATA_REGION = uuid.UUID("8b7ca206-4790-4b9a-b8fe-575f050f886e").bytes_le
    VIRTUAL_DISK_SIZE = uuid.UUID("2fa54224-cd1b-4876-b211-5dbed83bf4b8").bytes_le
    PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le

    def matches(self) -> bool:
        return self._partial("header")[:8] == b"vhdxfile"

    def _plan(self) -> None:
        if not self.matches():
            return
        self._want("regions", *self.REGION_TABLE)
        metadata_at = self._metadata_offset()
        if metadata_at is not None:
            self._want("metadata", metadata_at, self.METADATA_TABLE_SIZE)
            item = self._metadata_item(self.VIRTUAL_DISK_SIZE)
            if item is not None:
                self._want("size", metadata_at + item[0], 8)

    def _metadata_offset(self) -> int | None:
        table = self._data("regions")
        if not table or table[:4] != b"regi":
            return None
        count = min(struct.unpack_from("<I", table, 8)[0], (len(table) - 16) // 32)
        for entry in range(16, 16 + 32 * count, 32):
            if table[entry : entry + 16] == self.METADATA_REGION:
                return struct.unpack_from("<Q", table, entry + 16)[0]
        return None

    def _metadata_item(self, item_id: bytes) -> tuple[int, int] | None:
        """(offset in the metadata region, length) of a metadata item."""
        table = self._data("metadata")
        if not table or table[:8] != b"metadata":
            return None
        count = min(struct.unpack_from("<H", table, 10)[0], (len(table) - 32) // 32)
        for entry in range(32, 32 + 32 * count, 32):
            if table[entry : entry + 16] == item_id:
                return struct.unpack_from("<II", table, entry + 16)
        return None

    def inspect(self) -> int:
        self._need("regions")
        if self._metadata_offset() is None:
            raise InvalidImageData("The vhdx region table is invalid (it has no metadata).")
        self._need("metadata")
        if self._metadata_item(self.PARENT_LOCATOR) is not None:
            raise InvalidImageData("vhdx differencing images (with a parent disk) are not allowed.")
        if self._metadata_item(self.VIRTUAL_DISK_SIZE) is None:
            raise InvalidImageData("The vhdx image has no virtual disk size.")
        return struct.unpack_from("<Q", self._need("size"))[0]


class _Vdi(_Format):
    name = "vdi"
    SIGNATURE = 0xBEDA107F

    def matches(self) -> bool:
        head = self._partial("header")
        return len(head) >= 0x44 and struct.unpack_from("<I", head, 0x40)[0] == self.SIGNATURE

    def inspect(self) -> int:
        return struct.unpack_from("<Q", self._need("header"), 0x170)[0]


class _Iso(_Format):
    """ISO 9660: the primary volume descriptor follows 32 KiB of system area."""

    name = "iso"
    header = (0x8000, 2048)

    def matches(self) -> bool:
        return self._partial("header")[1:6] == b"CD001"

    def inspect(self) -> int:
        descriptor = self._need("header")
        blocks = struct.unpack_from("<I", descriptor, 0x50)[0]
        block_size = struct.unpack_from("<H", descriptor, 0x80)[0]
        return blocks * block_size


_FORMATS = (_Qcow2, _Vmdk, _Vhd, _Vhdx, _Vdi, _Iso)


class FormatInspector:
    """Inspect an upload chunk by chunk; ``finish`` gives the virtual size or raises."""

    def __init__(self, disk_format: str | None):
        self.disk_format = disk_format
        self._received = 0
        checked = disk_format in CHECKED_FORMATS
        self._formats = [cls() for cls in _FORMATS] if checked else []

    def feed(self, chunk: bytes) -> None:
        for fmt in self._formats:
            fmt.feed(self._received, chunk)
        self._received += len(chunk)

    @property
    def retained_bytes(self) -> int:
        """Bytes of the stream held in memory (bounded by a few MiB)."""
        return sum(fmt.retained for fmt in self._formats)

    def finish(self) -> int | None:
        """The image's virtual size (None for unchecked formats) or InvalidImageData."""
        if not self._formats:
            return None
        found = [fmt for fmt in self._formats if fmt.matches()]
        disks = [fmt for fmt in found if fmt.name != "iso"]
        if len(disks) > 1:
            names = " and ".join(fmt.name for fmt in disks)
            raise InvalidImageData(f"Image content is ambiguous: it looks like {names}.")
        content = (disks or found or [None])[0]
        looks_like = content.name if content else "raw"
        if self.disk_format == "raw":
            if looks_like not in ("raw", "iso"):
                raise self._mismatch(looks_like)
            return self._received
        if looks_like != self.disk_format:
            raise self._mismatch(looks_like)
        return content.inspect()

    def _mismatch(self, looks_like: str) -> InvalidImageData:
        return InvalidImageData(
            f"Image content does not match disk_format {self.disk_format} "
            f"(it looks like {looks_like})."
        )
