"""The streaming format inspector: real images from qemu-img, hand-built headers for the rest.

Every image is fed in several chunkings (1 MiB, 7 bytes, one byte at a time for small
ones, and an irregular mix) and must give the same answer each time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import subprocess
import uuid

import pytest

from services.store.backends.base import InvalidImageData
from services.store.formats import FormatInspector

MiB = 1024 * 1024
QEMU_IMG = shutil.which("qemu-img")


# -- feeding -----------------------------------------------------------------------------


def chunks_of(data: bytes, size: int):
    return (data[i : i + size] for i in range(0, len(data), size))


def irregular_chunks(data: bytes):
    sizes, start = itertools.cycle((1, 7, 511, 4093, 65537, MiB + 3)), 0
    while start < len(data):
        size = next(sizes)
        yield data[start : start + size]
        start += size


def chunkings(data: bytes):
    yield chunks_of(data, MiB)
    yield irregular_chunks(data)
    if len(data) <= MiB:
        yield chunks_of(data, 7)
    if len(data) <= 128 * 1024:
        yield chunks_of(data, 1)


def outcome(chunks, disk_format):
    inspector = FormatInspector(disk_format)
    for chunk in chunks:
        inspector.feed(chunk)
    try:
        return inspector.finish()
    except InvalidImageData as error:
        return f"InvalidImageData: {error}"


def inspect(data: bytes, disk_format: str | None):
    """The virtual size found in every chunking, or the InvalidImageData they all raise."""
    outcomes = {outcome(chunks, disk_format) for chunks in chunkings(data)}
    assert len(outcomes) == 1, f"chunkings disagree: {outcomes}"
    (result,) = outcomes
    if isinstance(result, str):
        raise InvalidImageData(result.removeprefix("InvalidImageData: "))
    return result


def mismatch(declared: str, looks_like: str) -> str:
    return rf"does not match disk_format {declared} \(it looks like {looks_like}\)\.$"


# -- images made by qemu-img --------------------------------------------------------------


class QemuImages:
    def __init__(self, workdir):
        self.workdir = workdir

    def create(self, name, fmt, size=None, *options) -> tuple[bytes, int]:
        """The bytes of a new image and its virtual size as ``qemu-img info`` reports it."""
        path = self.workdir / name
        if not path.exists():
            command = [QEMU_IMG, "create", "-q", "-f", fmt, *options, name]
            subprocess.run([*command, *([size] if size else [])], cwd=self.workdir, check=True)
        info = subprocess.run(
            [QEMU_IMG, "info", "-f", fmt, "--output=json", name],
            cwd=self.workdir,
            check=True,
            capture_output=True,
            text=True,
        )
        return path.read_bytes(), json.loads(info.stdout)["virtual-size"]


@pytest.fixture(scope="module")
def qemu(tmp_path_factory):
    if QEMU_IMG is None:
        pytest.skip("qemu-img is not installed (apt-get install qemu-utils)")
    return QemuImages(tmp_path_factory.mktemp("images"))


QEMU_CASES = {
    # name: (disk_format, qemu-img format, size, options)
    "qcow2": ("qcow2", "qcow2", "1G", ()),
    "qcow2-v2": ("qcow2", "qcow2", "3G", ("-o", "compat=0.10")),
    "qcow2-2M-clusters": ("qcow2", "qcow2", "5G", ("-o", "cluster_size=2M")),
    "vmdk-monolithicSparse": ("vmdk", "vmdk", "1G", ()),
    "vmdk-streamOptimized": ("vmdk", "vmdk", "2G", ("-o", "subformat=streamOptimized")),
    "vhd-dynamic": ("vhd", "vpc", "1G", ()),
    "vhd-fixed": ("vhd", "vpc", "2M", ("-o", "subformat=fixed")),
    "vhdx": ("vhdx", "vhdx", "1G", ()),
    "vdi": ("vdi", "vdi", "1G", ()),
    "raw": ("raw", "raw", "3M", ()),
}


def qemu_image(qemu, case):
    disk_format, fmt, size, options = QEMU_CASES[case]
    return qemu.create(case, fmt, size, *options)


@pytest.mark.parametrize("case", QEMU_CASES)
def test_qemu_image_is_accepted_with_the_virtual_size_qemu_reports(qemu, case):
    data, virtual_size = qemu_image(qemu, case)
    assert inspect(data, QEMU_CASES[case][0]) == virtual_size


@pytest.mark.parametrize(
    ("case", "declared", "looks_like"),
    [
        ("qcow2", "raw", "qcow2"),
        ("qcow2", "vmdk", "qcow2"),
        ("qcow2", "iso", "qcow2"),
        ("vmdk-monolithicSparse", "qcow2", "vmdk"),
        ("vmdk-streamOptimized", "raw", "vmdk"),
        ("vhd-dynamic", "raw", "vhd"),
        ("vhd-fixed", "raw", "vhd"),
        ("vhd-dynamic", "vhdx", "vhd"),
        ("vhdx", "raw", "vhdx"),
        ("vhdx", "vhd", "vhdx"),
        ("vdi", "raw", "vdi"),
        ("vdi", "qcow2", "vdi"),
        ("raw", "qcow2", "raw"),
        ("raw", "vmdk", "raw"),
        ("raw", "vhd", "raw"),
        ("raw", "vhdx", "raw"),
        ("raw", "vdi", "raw"),
        ("raw", "iso", "raw"),
    ],
)
def test_content_of_another_format_is_rejected(qemu, case, declared, looks_like):
    data, _ = qemu_image(qemu, case)
    with pytest.raises(InvalidImageData, match=mismatch(declared, looks_like)):
        inspect(data, declared)


def test_qcow2_with_a_backing_file_is_rejected(qemu):
    qemu.create("base.qcow2", "qcow2", "1G")
    data, _ = qemu.create("overlay.qcow2", "qcow2", None, "-b", "base.qcow2", "-F", "qcow2")
    with pytest.raises(InvalidImageData, match="qcow2 images with a backing file"):
        inspect(data, "qcow2")


def test_qcow2_with_an_external_data_file_is_rejected(qemu):
    data, _ = qemu.create("external.qcow2", "qcow2", "1G", "-o", "data_file=external.raw")
    with pytest.raises(InvalidImageData, match="qcow2 images with an external data file"):
        inspect(data, "qcow2")


def test_vmdk_with_a_parent_is_rejected(qemu):
    qemu.create("base.vmdk", "vmdk", "1G")
    data, _ = qemu.create("delta.vmdk", "vmdk", None, "-b", "base.vmdk", "-F", "vmdk")
    with pytest.raises(InvalidImageData, match="vmdk images with a parent"):
        inspect(data, "vmdk")


@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse"])
def test_vmdk_descriptor_file_is_rejected(qemu, subformat):
    data, _ = qemu.create(f"{subformat}.vmdk", "vmdk", "10M", "-o", f"subformat={subformat}")
    with pytest.raises(InvalidImageData, match="made of a descriptor file"):
        inspect(data, "vmdk")
    with pytest.raises(InvalidImageData, match=mismatch("raw", "vmdk")):
        inspect(data, "raw")


def test_vhd_differencing_disk_is_rejected(qemu):
    data, _ = qemu_image(qemu, "vhd-dynamic")
    differencing = bytearray(data)
    for footer in (0, len(data) - 512):  # the copy at offset 0 and the footer proper
        differencing[footer + 60 : footer + 64] = struct.pack(">I", 4)
    with pytest.raises(InvalidImageData, match="vhd differencing images"):
        inspect(bytes(differencing), "vhd")


def test_vhdx_with_a_parent_locator_is_rejected(qemu):
    data, _ = qemu_image(qemu, "vhdx")
    page83 = uuid.UUID("beca12ab-b2e6-4523-93ef-c309e000c746").bytes_le
    parent_locator = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le
    assert data.count(page83) == 1
    with pytest.raises(InvalidImageData, match="vhdx differencing images"):
        inspect(data.replace(page83, parent_locator), "vhdx")


def test_vhd_holding_an_iso_is_a_vhd(qemu):
    data, virtual_size = qemu_image(qemu, "vhd-fixed")
    data = iso_image(blocks=17) + data[17 * 2048 :]
    assert inspect(data, "vhd") == virtual_size
    with pytest.raises(InvalidImageData, match=mismatch("iso", "vhd")):
        inspect(data, "iso")


def test_content_with_two_formats_is_rejected(qemu):
    qcow2, _ = qemu_image(qemu, "qcow2")
    vhd, _ = qemu_image(qemu, "vhd-fixed")
    with pytest.raises(InvalidImageData, match="ambiguous: it looks like qcow2 and vhd"):
        inspect(qcow2 + vhd[-512:], "qcow2")


@pytest.mark.parametrize("case", ["qcow2", "vmdk-monolithicSparse", "vhd-dynamic", "vhdx", "vdi"])
def test_truncated_qemu_image_is_rejected(qemu, case):
    data, _ = qemu_image(qemu, case)
    cut = 200 * 1024 if case == "vhdx" else 100  # vhdx: inside its region table at 192 KiB
    with pytest.raises(InvalidImageData, match="truncated"):
        inspect(data[:cut], QEMU_CASES[case][0])


def test_retained_memory_stays_bounded_for_a_large_qcow2(qemu):
    qemu.create("large.qcow2", "qcow2", "64M", "-o", "preallocation=full")
    inspector, retained = FormatInspector("qcow2"), 0
    with open(qemu.workdir / "large.qcow2", "rb") as image:
        assert os.fstat(image.fileno()).st_size > 64 * MiB
        while chunk := image.read(MiB):
            inspector.feed(chunk)
            retained = max(retained, inspector.retained_bytes)
    assert inspector.finish() == 64 * MiB
    assert retained < 4 * MiB


# -- hand-built images -------------------------------------------------------------------


def qcow2_image(
    version=3, size=10 * MiB, backing=(0, 0), incompatible=0, extensions=(), cluster_bits=12
) -> bytes:
    header = struct.pack(
        ">4sIQIIQIIQQIIQ", b"QFI\xfb", version, *backing, cluster_bits, size, 0, 0, 0, 0, 0, 0, 0
    )
    if version >= 3:
        header += struct.pack(">QQQII", incompatible, 0, 0, 4, 104)
    for kind, payload in (*extensions, (0, b"")):
        header += struct.pack(">II", kind, len(payload)) + payload + bytes(-len(payload) % 8)
    return header.ljust(1 << cluster_bits, b"\0")


def vmdk_image(descriptor: str, capacity_sectors=2048) -> bytes:
    header = struct.pack("<4sIIQQQQ", b"KDMV", 1, 3, capacity_sectors, 128, 1, 20)
    return header.ljust(512, b"\0") + descriptor.encode().ljust(20 * 512, b"\0") + bytes(4096)


def iso_image(blocks=40, block_size=2048) -> bytes:
    descriptor = bytearray(2048)
    descriptor[0:7] = b"\x01CD001\x01"
    descriptor[0x50:0x58] = struct.pack("<I", blocks) + struct.pack(">I", blocks)
    descriptor[0x80:0x84] = struct.pack("<H", block_size) + struct.pack(">H", block_size)
    return (bytes(0x8000) + descriptor).ljust(blocks * block_size, b"\0")


VMDK_DESCRIPTOR = """# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="{create_type}"

# Extent description
RW 2048 SPARSE "disk.vmdk"
{extra}
ddb.adapterType = "ide"
"""


def test_hand_built_qcow2_v3_is_accepted():
    assert inspect(qcow2_image(size=12345 * MiB), "qcow2") == 12345 * MiB
    assert inspect(qcow2_image(extensions=[(0x6803F857, bytes(48))]), "qcow2") == 10 * MiB


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (qcow2_image(incompatible=0b100), "external data file"),
        (qcow2_image(extensions=[(0x44415441, b"/etc/shadow")]), "external data file"),
        (qcow2_image(version=2, extensions=[(0x44415441, b"/etc/shadow")]), "external data file"),
        (qcow2_image(backing=(4096, 0)), "backing file"),
        (qcow2_image(backing=(0, 11)), "backing file"),
        (qcow2_image(version=1), "qcow2 version 1 is not supported"),
        (qcow2_image(version=4), "qcow2 version 4 is not supported"),
        (qcow2_image(extensions=[(0x6803F857, bytes(1 << 17))]), "extensions are truncated"),
    ],
)
def test_unsafe_hand_built_qcow2_is_rejected(image, message):
    with pytest.raises(InvalidImageData, match=message):
        inspect(image, "qcow2")


def test_hand_built_vmdk_is_accepted():
    descriptor = VMDK_DESCRIPTOR.format(create_type="monolithicSparse", extra="")
    assert inspect(vmdk_image(descriptor, capacity_sectors=4096), "vmdk") == 4096 * 512


@pytest.mark.parametrize(
    ("create_type", "extra", "message"),
    [
        ("vmfs", "", "createType 'vmfs' are not allowed"),
        ("monolithicSparse", 'RW 2048 FLAT "/etc/shadow" 0', "exactly one extent"),
        ("monolithicSparse", '# parentFileNameHint="/etc/shadow"', "with a parent"),
    ],
)
def test_unsafe_hand_built_vmdk_is_rejected(create_type, extra, message):
    descriptor = VMDK_DESCRIPTOR.format(create_type=create_type, extra=extra)
    with pytest.raises(InvalidImageData, match=message):
        inspect(vmdk_image(descriptor), "vmdk")


def test_iso_is_accepted_as_iso_with_its_volume_size():
    assert inspect(iso_image(blocks=40), "iso") == 40 * 2048
    assert inspect(iso_image(blocks=80, block_size=512) + bytes(4096), "iso") == 80 * 512


def test_iso_may_be_uploaded_as_raw_and_stays_raw():
    data = iso_image(blocks=40) + b"tail"
    assert inspect(data, "raw") == len(data)


def test_iso_is_not_a_qcow2():
    with pytest.raises(InvalidImageData, match=mismatch("qcow2", "iso")):
        inspect(iso_image(), "qcow2")


@pytest.mark.parametrize(
    ("image", "declared"),
    [
        (qcow2_image()[:64], "qcow2"),
        (vmdk_image(VMDK_DESCRIPTOR)[:200], "vmdk"),
        (vmdk_image(VMDK_DESCRIPTOR)[:1000], "vmdk"),
        (iso_image()[: 0x8000 + 100], "iso"),
    ],
)
def test_truncated_header_is_rejected(image, declared):
    with pytest.raises(InvalidImageData, match="truncated"):
        inspect(image, declared)


@pytest.mark.parametrize("declared", ["qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"])
def test_empty_or_short_stream_is_not_an_image(declared):
    for data in (b"", b"\0" * 100):
        with pytest.raises(InvalidImageData, match=mismatch(declared, "raw")):
            inspect(data, declared)


@pytest.mark.parametrize("size", [0, 1, 511, 512, 123457, 3 * MiB + 5])
def test_raw_is_accepted_with_the_size_received(size):
    data = (os.urandom(4096) * (size // 4096 + 1))[:size]
    assert inspect(data, "raw") == size


@pytest.mark.parametrize("declared", ["ami", "ari", "aki", "ploop", None])
def test_other_formats_are_not_checked(declared):
    assert inspect(qcow2_image(backing=(4096, 11)), declared) is None


def test_retained_memory_stays_bounded_for_a_large_raw_stream():
    inspector, block, retained = FormatInspector("raw"), os.urandom(MiB), 0
    for _ in range(64):
        inspector.feed(block)
        retained = max(retained, inspector.retained_bytes)
    assert inspector.finish() == 64 * MiB
    assert retained < 64 * 1024
