"""Tessera's own safety checks, on top of oslo.utils' format inspector.

``oslo_utils.imageutils.format_inspector`` (what Glance 33 uses) finds an upload's
format and runs its safety checks: qcow2 backing file, data-file bit and unknown
incompatible features; vmdk subformat and extent names; QED banned; LUKS version; the
GPT protective MBR. It has nothing for these, which qemu does follow to other files:

- qcow2: an external data-file name in the header extensions (0x44415441), which qemu
  reads whatever the data-file feature bit says;
- vmdk: ``parentFileNameHint`` anywhere in the embedded descriptor (qemu's
  ``vmdk_parent_open`` searches the raw text, comments included) and more than one
  extent; the library accepts a parent hint as an ordinary header field;
- vhd: a differencing disk (disk type 4), whose header names a parent disk;
- vhdx: a parent locator metadata item (a differencing disk).

Each check is a small ``FileInspector`` (the library's own extension point) fed the same
chunks; ``AddOnChecks.check(name)`` runs the one for the format the library chose. Each
keeps a few KiB (a qcow2's first cluster, at most 2 MiB).
"""

from __future__ import annotations

import struct
import uuid

from oslo_utils.imageutils import format_inspector as fi


class _AddOn(fi.FileInspector):
    """Captures regions as the library's inspectors do; ``check`` raises SafetyViolation."""

    CHECK = ""  # the name under which a failure is reported

    def _initialize(self) -> None:
        self._regions()
        self.add_safety_check(fi.SafetyCheck(self.CHECK, self.check))

    def _regions(self) -> None:
        raise NotImplementedError

    @property
    def format_match(self) -> bool:
        return True  # only consulted once the library has recognised the format

    def check(self) -> None:
        raise NotImplementedError


class Qcow2DataFileExtension(_AddOn):
    NAME = "qcow2"
    CHECK = "data_file_extension"
    DATA_FILE = 0x44415441
    MAX_CLUSTER_BITS = 21  # 2 MiB, qemu's limit; header extensions end with the first cluster

    def _regions(self) -> None:
        self.new_region("header", fi.CaptureRegion(0, 512))

    def post_process(self) -> None:
        header = self.region("header")
        if header.complete and not self.has_region("cluster"):
            if header.data[:4] != b"QFI\xfb":
                raise fi.ImageFormatError("Not a qcow2 image")  # stops being fed
            cluster_bits = struct.unpack_from(">I", header.data, 20)[0]
            cluster = 1 << min(max(cluster_bits, 9), self.MAX_CLUSTER_BITS)
            self.new_region("cluster", fi.CaptureRegion(512, cluster - 512))

    def check(self) -> None:
        data = bytes(self.region("header").data)
        if self.has_region("cluster"):
            data += self.region("cluster").data
        version = struct.unpack_from(">I", data, 4)[0]
        if version not in (2, 3):
            return  # the library refuses it
        offset = 72 if version == 2 else max(struct.unpack_from(">I", data, 100)[0], 104)
        while True:
            if offset + 8 > len(data):
                raise fi.SafetyViolation("Header extensions run past the image's first cluster")
            kind, length = struct.unpack_from(">II", data, offset)
            if kind == 0:
                return
            if kind == self.DATA_FILE:
                raise fi.SafetyViolation("Image names an external data file")
            offset += 8 + (length + 7) // 8 * 8


class VmdkDescriptorReferences(_AddOn):
    NAME = "vmdk"
    CHECK = "descriptor_references"
    # Where qemu reads a sparse vmdk's descriptor for the parent hint: sector 1, 20 sectors.
    DESCRIPTOR = (512, 20 * 512)
    ACCESS = (b"RW", b"RDONLY", b"NOACCESS")

    def _regions(self) -> None:
        self.new_region("descriptor", fi.CaptureRegion(*self.DESCRIPTOR))

    def check(self) -> None:
        text = bytes(self.region("descriptor").data).split(b"\0", 1)[0]
        if b"parentFileNameHint" in text:
            raise fi.SafetyViolation("Image names a parent disk (parentFileNameHint)")
        lines = (line.split(None, 1) for line in text.splitlines())
        extents = [words for words in lines if words and words[0] in self.ACCESS]
        if len(extents) != 1:
            raise fi.SafetyViolation("Image must have exactly one extent")


class VhdDifferencing(_AddOn):
    """A dynamic or differencing vhd starts with a copy of its footer (the library reads
    only that copy: a fixed vhd, footer at the end only, is raw content to it and qemu)."""

    NAME = "vhd"
    CHECK = "differencing"
    DIFFERENCING = 4

    def _regions(self) -> None:
        self.new_region("footer", fi.CaptureRegion(0, 512))

    def check(self) -> None:
        footer = self.region("footer").data
        if len(footer) < 64 or struct.unpack_from(">I", footer, 60)[0] == self.DIFFERENCING:
            raise fi.SafetyViolation("Image is a differencing disk (it has a parent)")


class VhdxParentLocator(fi.VHDXInspector):
    """The library's vhdx inspector, which keeps the whole metadata table in its
    ``metadata`` region, plus a check for a parent locator item in that table.

    The region's name is the library's own: if it changes, every vhdx is refused
    (fail closed) and tests/unit/store/test_formats.py says so."""

    CHECK = "parent_locator"
    PARENT_LOCATOR = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le

    def _initialize(self) -> None:
        super()._initialize()
        self.add_safety_check(fi.SafetyCheck(self.CHECK, self.check))

    def check(self) -> None:
        if not self.has_region("metadata"):
            raise fi.SafetyViolation("Image has no metadata table to check for a parent")
        table = bytes(self.region("metadata").data)
        if table[:8] != b"metadata":
            raise fi.SafetyViolation("Image has no metadata table to check for a parent")
        count = min(struct.unpack_from("<H", table, 10)[0], (len(table) - 32) // 32)
        for entry in range(32, 32 + 32 * count, 32):
            if table[entry : entry + 16] == self.PARENT_LOCATOR:
                raise fi.SafetyViolation("Image is a differencing disk (it has a parent locator)")


ADD_ONS = (Qcow2DataFileExtension, VmdkDescriptorReferences, VhdDifferencing, VhdxParentLocator)


class AddOnChecks:
    """Every add-on fed the upload's chunks; an add-on that cannot parse the stream stops
    being fed (as InspectWrapper does with the library's inspectors) and fails closed."""

    def __init__(self):
        self._live = {cls.NAME: cls() for cls in ADD_ONS}
        self._failed: dict[str, Exception] = {}

    def feed(self, chunk) -> None:
        for name, addon in list(self._live.items()):
            try:
                addon.eat_chunk(chunk)
            except Exception as exc:  # noqa: BLE001 - the stream is simply not this format
                self._failed[name] = exc
                del self._live[name]

    def check(self, format_name: str) -> dict[str, Exception]:
        """The failures of the add-on for ``format_name`` (none if it has no add-on)."""
        if format_name in self._failed:
            reason = f"Image could not be inspected ({self._failed[format_name]})"
            return {"addon_parse": fi.SafetyViolation(reason)}
        addon = self._live.get(format_name)
        if addon is None:
            return {}
        try:
            addon.check()
        except fi.SafetyViolation as exc:
            return {addon.CHECK: exc}
        return {}
