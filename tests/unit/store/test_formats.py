"""Upload format inspection: oslo.utils' format inspector, decided as Glance 33 decides,
plus Tessera's add-on checks. Real images from qemu-img, hand-built headers for the rest.

Every image is fed in several chunkings (1 MiB, an irregular mix, 7 bytes and single
bytes for small ones, and chunks of one reused buffer, as the store's pipeline feeds
them) and must give the same answer each time.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import struct
import subprocess
import tracemalloc
import uuid
import zlib

import pytest
from oslo_utils.imageutils import format_inspector as fi

from services.common.config import load_config
from services.store.backends.base import InvalidImageData
from services.store.format_checks import VhdxParentLocator
from services.store.formats import FormatInspector, FormatPolicy

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


def reused_buffer_chunks(data: bytes, size: int = 64 * 1024):
    """Views of one buffer, overwritten for the next chunk and scribbled over at the end:
    an inspector that kept a view instead of a copy would read junk."""
    buffer = bytearray(size)
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        buffer[: len(piece)] = piece
        yield memoryview(buffer)[: len(piece)]
    buffer[:] = b"\xa5" * size


def chunkings(data: bytes):
    yield chunks_of(data, 4 * MiB)  # the store pipeline's chunk size
    yield chunks_of(data, MiB)
    yield irregular_chunks(data)
    yield reused_buffer_chunks(data)
    if len(data) <= 64 * 1024:
        yield chunks_of(data, 7)
    if len(data) <= 16 * 1024:
        yield chunks_of(data, 1)


def outcome(chunks, disk_format, **options):
    inspector = FormatInspector(disk_format, **options)
    for chunk in chunks:
        inspector.feed(chunk)
    try:
        return inspector.finish()
    except InvalidImageData as error:
        return f"InvalidImageData: {error}"


def inspect(data: bytes, disk_format: str | None, **options):
    """The virtual size found in every chunking, or the InvalidImageData they all raise."""
    outcomes = {outcome(chunks, disk_format, **options) for chunks in chunkings(data)}
    assert len(outcomes) == 1, f"chunkings disagree: {outcomes}"
    (result,) = outcomes
    if isinstance(result, str):
        raise InvalidImageData(result.removeprefix("InvalidImageData: "))
    return result


def mismatch(declared: str, found: str) -> str:
    return rf"^Image disk_format {declared} does not match stream data {found}$"


def unsafe(found: str, reason: str) -> str:
    return rf"^Image failed safety checks \({found}: .*{reason}"


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
        pytest.skip("qemu-img is not installed (make system-deps)")
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
    "qed": ("qed", "qed", "1G", ()),
}


def qemu_image(qemu, case):
    disk_format, fmt, size, options = QEMU_CASES[case]
    return qemu.create(case, fmt, size, *options)


@pytest.mark.parametrize(
    "case",
    ["qcow2", "qcow2-v2", "qcow2-2M-clusters", "vmdk-monolithicSparse"]
    + ["vmdk-streamOptimized", "vhd-dynamic", "vhdx", "vdi", "raw"],
)
def test_qemu_image_is_accepted_with_the_virtual_size_qemu_reports(qemu, case):
    data, virtual_size = qemu_image(qemu, case)
    assert inspect(data, QEMU_CASES[case][0]) == virtual_size


@pytest.mark.parametrize(
    ("case", "declared", "found"),
    [
        ("qcow2", "vmdk", "qcow2"),
        ("qcow2", "iso", "qcow2"),
        ("qcow2", "ami", "qcow2"),
        ("vmdk-monolithicSparse", "qcow2", "vmdk"),
        ("vhd-dynamic", "vhdx", "vhd"),
        ("vhdx", "vhd", "vhdx"),
        ("vdi", "qcow2", "vdi"),
        ("qed", "qcow2", "qed"),
        ("raw", "qcow2", "raw"),
        ("raw", "vmdk", "raw"),
        ("raw", "vhd", "raw"),
        ("raw", "vhdx", "raw"),
        ("raw", "vdi", "raw"),
        ("raw", "iso", "raw"),
        # qemu, like the library, finds a vhd by the footer copy at offset 0: a fixed vhd
        # (footer at the end only) is raw content, refused as vhd as Glance 33 does.
        ("vhd-fixed", "vhd", "raw"),
    ],
)
def test_content_of_another_format_is_rejected(qemu, case, declared, found):
    data, _ = qemu_image(qemu, case)
    with pytest.raises(InvalidImageData, match=mismatch(declared, found)):
        inspect(data, declared)


@pytest.mark.parametrize(
    "case", ["qcow2", "vmdk-streamOptimized", "vhd-dynamic", "vhd-fixed", "vhdx", "vdi"]
)
def test_safe_content_declared_raw_stays_raw_with_its_byte_size(qemu, case):
    # Glance 33 lets any safe content be called raw ("we can't inspect it, so we allow
    # it"); the virtual size is then the byte size, as for raw.
    data, _ = qemu_image(qemu, case)
    assert inspect(data, "raw") == len(data)


def test_qcow2_with_a_backing_file_is_rejected_under_any_name(qemu):
    qemu.create("base.qcow2", "qcow2", "1G")
    data, _ = qemu.create("overlay.qcow2", "qcow2", None, "-b", "base.qcow2", "-F", "qcow2")
    for declared in ("qcow2", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("qcow2", "Image has a backing file")):
            inspect(data, declared)


def test_qcow2_with_an_external_data_file_is_rejected(qemu):
    data, _ = qemu.create("external.qcow2", "qcow2", "1G", "-o", "data_file=external.raw")
    # the library sees the data-file feature bit, the add-on the file's name
    with pytest.raises(InvalidImageData, match="data_file set; Image names an external data"):
        inspect(data, "qcow2")


def test_qcow2_with_an_unknown_incompatible_feature_is_rejected(qemu):
    data, _ = qemu_image(qemu, "qcow2")
    features = struct.unpack_from(">Q", data, 72)[0]
    patched = data[:72] + struct.pack(">Q", features | 1 << 5) + data[80:]
    for declared in ("qcow2", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("qcow2", "Unknown QCOW2 features")):
            inspect(patched, declared)


def test_qed_is_refused_under_any_name(qemu):
    data, _ = qemu_image(qemu, "qed")
    with pytest.raises(InvalidImageData, match=unsafe("qed", "This file format is not allowed")):
        inspect(data, "raw")


def test_vmdk_with_a_parent_is_rejected(qemu):
    qemu.create("base.vmdk", "vmdk", "1G")
    data, _ = qemu.create("delta.vmdk", "vmdk", None, "-b", "base.vmdk", "-F", "vmdk")
    for declared in ("vmdk", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("vmdk", "parentFileNameHint")):
            inspect(data, declared)


@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse"])
def test_vmdk_descriptor_file_is_rejected(qemu, subformat):
    data, _ = qemu.create(f"{subformat}.vmdk", "vmdk", "10M", "-o", f"subformat={subformat}")
    for declared in ("vmdk", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("vmdk", "Unsupported subformat")):
            inspect(data, declared)


def test_vhd_differencing_disk_is_rejected(qemu):
    data, _ = qemu_image(qemu, "vhd-dynamic")
    differencing = bytearray(data)
    for footer in (0, len(data) - 512):  # the copy at offset 0 and the footer proper
        differencing[footer + 60 : footer + 64] = struct.pack(">I", 4)
    for declared in ("vhd", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("vhd", "differencing disk")):
            inspect(bytes(differencing), declared)


def test_vhdx_with_a_parent_locator_is_rejected(qemu):
    data, _ = qemu_image(qemu, "vhdx")
    page83 = uuid.UUID("beca12ab-b2e6-4523-93ef-c309e000c746").bytes_le
    parent_locator = uuid.UUID("a8d35f2d-b30b-454d-abf7-d3d84834ab0c").bytes_le
    assert data.count(page83) == 1
    with pytest.raises(InvalidImageData, match=unsafe("vhdx", "parent locator")):
        inspect(data.replace(page83, parent_locator), "vhdx")


def test_library_vhdx_inspector_keeps_the_metadata_table_the_add_on_reads(qemu):
    # Tripwire: the vhdx add-on reads the library's region named "metadata". Should
    # oslo.utils rename it, every vhdx would be refused (fail closed) and this test says why.
    data, _ = qemu_image(qemu, "vhdx")
    inspector = VhdxParentLocator()
    for chunk in chunks_of(data, MiB):
        inspector.eat_chunk(chunk)
    assert inspector.has_region("metadata")
    assert bytes(inspector.region("metadata").data[:8]) == b"metadata"
    inspector.check()  # no parent locator: passes


@pytest.mark.parametrize(
    ("case", "cut", "message"),
    [
        ("qcow2", 100, mismatch("qcow2", "raw")),
        ("vmdk-monolithicSparse", 100, "Incomplete file cannot be safety checked"),
        ("vhd-dynamic", 100, "Incomplete file cannot be safety checked"),
        ("vhdx", 200 * 1024, "Incomplete file cannot be safety checked"),
        ("vdi", 100, mismatch("vdi", "raw")),
    ],
)
def test_truncated_qemu_image_is_rejected(qemu, case, cut, message):
    data, _ = qemu_image(qemu, case)
    with pytest.raises(InvalidImageData, match=message):
        inspect(data[:cut], QEMU_CASES[case][0])


def test_inspection_keeps_only_headers_of_a_large_image(qemu):
    qemu.create("large.qcow2", "qcow2", "64M", "-o", "preallocation=full,cluster_size=2M")
    buffer = memoryview(bytearray(4 * MiB))  # the pipeline's chunk size, one reused buffer
    inspector = FormatInspector("qcow2")
    tracemalloc.start()
    try:
        with open(qemu.workdir / "large.qcow2", "rb") as image:
            while size := image.readinto(buffer):
                inspector.feed(buffer[:size])
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert inspector.finish() == 64 * MiB
    # the first chunk is copied while regions are cut from it; what stays is headers
    # (a 2 MiB first qcow2 cluster for the add-on, 1 MiB of vmdk descriptor candidate)
    assert held < 4 * MiB, held
    assert peak < 16 * MiB, peak


def test_inspection_keeps_little_of_a_raw_stream():
    buffer = memoryview(bytearray(random.Random(5).randbytes(4 * MiB)))
    inspector = FormatInspector("raw")
    tracemalloc.start()
    try:
        for _ in range(16):
            inspector.feed(buffer)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert inspector.finish() == 64 * MiB
    assert held < 2 * MiB, held  # the library's 1 MiB vmdk descriptor candidate, mostly
    assert peak < 8 * MiB, peak


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


def iso_image(blocks=40, block_size=2048, system_area=bytes(0x8000)) -> bytes:
    descriptor = bytearray(2048)
    descriptor[0:7] = b"\x01CD001\x01"
    descriptor[0x50:0x58] = struct.pack("<I", blocks) + struct.pack(">I", blocks)
    descriptor[0x80:0x84] = struct.pack("<H", block_size) + struct.pack(">H", block_size)
    return (system_area + descriptor).ljust(blocks * block_size, b"\0")


def luks_image(version=1, payload_sectors=4096, size=4 * MiB) -> bytes:
    """A LUKS1 header (qemu-img takes seconds to make one: its key derivation is slow on
    purpose) with one active key slot, then the encrypted payload."""
    header = struct.pack(
        ">6sH32s32s32sII20s32sI40s",
        *(b"LUKS\xba\xbe", version, b"aes", b"xts-plain64", b"sha256", payload_sectors, 64),
        *(bytes(20), bytes(32), 1000, str(uuid.UUID(int=3)).encode()),
    )
    slots = [struct.pack(">II32sII", 0x00AC71F3, 1000, bytes(32), 8, 4000)]
    slots += [struct.pack(">II32sII", 0x0000DEAD, 0, bytes(32), 0, 4000)] * 7
    header += b"".join(slots)
    assert len(header) == 592
    return header.ljust(size, b"\x5a")


def protective_mbr(sectors: int, extra_partition: bool = False) -> bytes:
    """An MBR whose one partition (type 0xEE) covers the disk from LBA 1: a GPT disk."""
    mbr = bytearray(512)
    entry = struct.pack("<B3BB3BII", 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, sectors - 1)
    mbr[446:462] = entry
    if extra_partition:  # a second, ordinary partition: not allowed beside the GPT one
        mbr[462:478] = struct.pack("<B3BB3BII", 0x80, 0, 1, 0, 0x83, 0xFE, 0xFF, 0xFF, 2048, 2048)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def gpt_image(sectors=2048, extra_partition=False) -> bytes:
    """A GPT disk: protective MBR, the "EFI PART" header at LBA 1, one Linux partition in
    the entry array at LBA 2 (the backup GPT at the end is left out)."""
    entry = struct.pack(
        "<16s16sQQQ72s",
        uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4").bytes_le,  # Linux filesystem
        uuid.UUID(int=random.Random(1).getrandbits(128)).bytes_le,
        34,
        sectors - 34,
        0,
        "root".encode("utf-16-le"),
    )
    entries = entry.ljust(128 * 128, b"\0")
    disk_guid = uuid.UUID(int=random.Random(2).getrandbits(128)).bytes_le

    def header(crc: int) -> bytes:
        return struct.pack(
            "<8sIIIIQQQQ16sQIII",
            *(b"EFI PART", 0x00010000, 92, crc, 0, 1, sectors - 1, 34, sectors - 34),
            *(disk_guid, 2, 128, 128, zlib.crc32(entries)),
        )

    disk = (
        protective_mbr(sectors, extra_partition)
        + header(zlib.crc32(header(0))).ljust(512, b"\0")
        + entries
    )
    return disk.ljust(sectors * 512, b"\0")


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
    # the incompatible features the library knows: dirty, corrupt, compression type
    assert inspect(qcow2_image(incompatible=0b1011), "qcow2") == 10 * MiB
    # a backing-file name length without an offset names no file (qemu reads none)
    assert inspect(qcow2_image(backing=(0, 11)), "qcow2") == 10 * MiB


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (qcow2_image(incompatible=0b100), "Image has data_file set"),
        (qcow2_image(incompatible=1 << 4), "Unknown QCOW2 features found"),  # extended L2
        (qcow2_image(incompatible=1 << 5), "Unknown QCOW2 features found"),
        (qcow2_image(incompatible=1 << 63), "Unknown QCOW2 features found"),
        (qcow2_image(extensions=[(0x44415441, b"/etc/shadow")]), "names an external data file"),
        (qcow2_image(version=2, extensions=[(0x44415441, b"x")]), "names an external data file"),
        (qcow2_image(backing=(4096, 0)), "Image has a backing file"),
        (qcow2_image(version=1), "Unsupported qcow2 version"),
        (qcow2_image(version=4), "Unsupported qcow2 version"),
        (qcow2_image(extensions=[(0x6803F857, bytes(1 << 17))]), "run past the image's first"),
    ],
)
def test_unsafe_hand_built_qcow2_is_rejected(image, message):
    with pytest.raises(InvalidImageData, match=unsafe("qcow2", message)):
        inspect(image, "qcow2")


def test_hand_built_vmdk_is_accepted():
    descriptor = VMDK_DESCRIPTOR.format(create_type="monolithicSparse", extra="")
    assert inspect(vmdk_image(descriptor, capacity_sectors=4096), "vmdk") == 4096 * 512


@pytest.mark.parametrize(
    ("create_type", "extra", "message"),
    [
        ("vmfs", "", "Unsupported subformat"),
        ("monolithicSparse", 'RW 2048 FLAT "/etc/shadow" 0', "Invalid extent filenames found"),
        ("monolithicSparse", 'RW 2048 FLAT "other.vmdk" 0', "exactly one extent"),
        ("monolithicSparse", 'parentFileNameHint="/etc/shadow"', "parentFileNameHint"),
        ("monolithicSparse", '# parentFileNameHint="/etc/shadow"', "parentFileNameHint"),
        ("monolithicSparse", "something odd", "Invalid VMDK descriptor data"),
    ],
)
def test_unsafe_hand_built_vmdk_is_rejected(create_type, extra, message):
    descriptor = VMDK_DESCRIPTOR.format(create_type=create_type, extra=extra)
    for declared in ("vmdk", "raw"):
        with pytest.raises(InvalidImageData, match=unsafe("vmdk", message)):
            inspect(vmdk_image(descriptor), declared)


def test_luks_declared_raw_stays_raw_with_its_byte_size():
    data = luks_image()
    assert inspect(data, "raw") == len(data)
    with pytest.raises(InvalidImageData, match=mismatch("qcow2", "luks")):
        inspect(data, "qcow2")


def test_luks_version_2_is_refused():
    with pytest.raises(InvalidImageData, match=unsafe("luks", "LUKS version 2 is not supported")):
        inspect(luks_image(version=2), "raw")


def test_gpt_disk_declared_raw_stays_raw_with_its_byte_size():
    data = gpt_image()
    assert data[512:520] == b"EFI PART"
    assert inspect(data, "raw") == len(data)
    with pytest.raises(InvalidImageData, match=mismatch("qcow2", "gpt")):
        inspect(data, "qcow2")


def test_gpt_disk_with_a_bad_protective_mbr_is_refused_unless_configured_nonfatal():
    data = gpt_image(extra_partition=True)
    with pytest.raises(InvalidImageData, match=unsafe("gpt", "invalid extra partitions")):
        inspect(data, "raw")
    lenient = FormatPolicy(gpt_safety_checks_nonfatal=frozenset({"mbr"}))
    assert inspect(data, "raw", policy=lenient) == len(data)


def test_iso_is_accepted_as_iso_with_its_volume_size():
    assert inspect(iso_image(blocks=40), "iso") == 40 * 2048
    assert inspect(iso_image(blocks=80, block_size=512) + bytes(4096), "iso") == 80 * 512


def test_iso_with_a_gpt_in_front_is_an_iso():
    hybrid = iso_image(blocks=40, system_area=protective_mbr(160).ljust(0x8000, b"\0"))
    assert inspect(hybrid, "iso") == 40 * 2048
    assert inspect(hybrid, "raw") == len(hybrid)


def test_iso_may_be_uploaded_as_raw_and_stays_raw():
    data = iso_image(blocks=40) + b"tail"
    assert inspect(data, "raw") == len(data)


def test_iso_is_not_a_qcow2():
    with pytest.raises(InvalidImageData, match=mismatch("qcow2", "iso")):
        inspect(iso_image(), "qcow2")


def test_content_with_two_formats_is_rejected():
    # a qcow2 whose first cluster also holds an ISO volume descriptor
    qcow2 = qcow2_image(cluster_bits=16)
    hidden = qcow2[:0x8000] + iso_image(blocks=17)[0x8000:0x8800] + qcow2[0x8800:]
    with pytest.raises(InvalidImageData, match="^Multiple formats detected: iso,qcow2$"):
        inspect(hidden, "qcow2")


@pytest.mark.parametrize(
    ("image", "declared", "message"),
    [
        (qcow2_image()[:64], "qcow2", mismatch("qcow2", "raw")),
        (vmdk_image(VMDK_DESCRIPTOR)[:200], "vmdk", "Incomplete file cannot be safety checked"),
        (vmdk_image(VMDK_DESCRIPTOR)[:1000], "vmdk", "Incomplete file cannot be safety checked"),
        (iso_image()[: 0x8000 + 100], "iso", mismatch("iso", "raw")),
    ],
)
def test_truncated_header_is_rejected(image, declared, message):
    with pytest.raises(InvalidImageData, match=message):
        inspect(image, declared)


@pytest.mark.parametrize("declared", ["qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"])
def test_empty_or_short_stream_is_not_an_image(declared):
    for data in (b"", b"\0" * 100):
        with pytest.raises(InvalidImageData, match=mismatch(declared, "raw")):
            inspect(data, declared)


@pytest.mark.parametrize("size", [1, 511, 512, 123457, 3 * MiB + 5])
def test_raw_is_accepted_with_the_size_received(size):
    data = random.Random(size).randbytes(size)
    assert inspect(data, "raw") == size


def test_empty_raw_has_no_virtual_size():
    assert inspect(b"", "raw") is None  # Glance leaves a zero virtual_size unset


@pytest.mark.parametrize("declared", ["ami", "ari", "aki", "ploop"])
def test_plain_content_of_formats_the_library_does_not_know_is_accepted(declared):
    assert inspect(random.Random(7).randbytes(4096), declared) is None


def test_nothing_is_inspected_without_a_disk_format_or_in_a_container():
    overlay = qcow2_image(backing=(4096, 11))
    assert inspect(overlay, None) is None
    for container in ("ova", "ovf", "docker", "compressed", "ami", None):
        assert inspect(overlay, "qcow2", container_format=container) is None


def test_a_mismatch_only_warns_when_require_image_format_match_is_off():
    lenient = FormatPolicy(require_image_format_match=False)
    assert inspect(b"\0" * 4096, "qcow2", policy=lenient) is None
    # safety checks stay fatal
    with pytest.raises(InvalidImageData, match=unsafe("qcow2", "backing file")):
        inspect(qcow2_image(backing=(4096, 11)), "qcow2", policy=lenient)


def test_format_policy_reads_glance_options():
    conf = load_config([])
    assert FormatPolicy.from_config(conf) == FormatPolicy()
    conf.set_override("require_image_format_match", False, group="image_format")
    conf.set_override("gpt_safety_checks_nonfatal", ["mbr"], group="image_format")
    assert FormatPolicy.from_config(conf) == FormatPolicy(False, frozenset({"mbr"}))


def test_library_errors_are_the_ones_caught():
    # the names formats.py relies on exist in the pinned oslo.utils
    assert issubclass(fi.ImageFormatError, Exception)
    assert {"raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "gpt", "luks", "qed"} <= set(
        fi.ALL_FORMATS
    )
