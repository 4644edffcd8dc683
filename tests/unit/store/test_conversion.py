"""image_conversion's checks and qemu-img run (services/store/conversion.py) on files
qemu-img makes: the input is inspected before qemu-img sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
from unittest import mock

import pytest

from services.common.errors import InvalidImageData
from services.store import conversion
from services.store.formats import FormatPolicy

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is missing")


def qemu(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def qcow2(tmp_path):
    raw = tmp_path / "in.raw"
    raw.write_bytes(os.urandom(256 * 1024) + bytes(768 * 1024))
    path = tmp_path / "image"
    qemu("convert", "-f", "raw", "-O", "qcow2", str(raw), str(path))
    return path


def test_qcow2_to_raw(qcow2, tmp_path):
    expected = tmp_path / "expected.raw"
    qemu("convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(expected))
    converted = conversion.convert(qcow2, "qcow2", "raw", FormatPolicy())
    assert converted.name == "image.converted"
    assert converted.read_bytes() == expected.read_bytes()


def test_backing_file_refused_before_qemu_img(tmp_path):
    base = tmp_path / "base.raw"
    base.write_bytes(bytes(1024 * 1024))
    path = tmp_path / "image"
    qemu("create", "-f", "qcow2", "-b", str(base), "-F", "raw", str(path))
    with mock.patch.object(conversion.subprocess, "Popen") as popen:
        with pytest.raises(InvalidImageData, match="safety checks"):
            conversion.convert(path, "qcow2", "raw", FormatPolicy())
    popen.assert_not_called()
    assert not (tmp_path / "image.converted").exists()


def test_format_mismatch_refused(qcow2):
    """Glance refuses to convert data that is not what disk_format says (here even with
    require_image_format_match off)."""
    lax = FormatPolicy(require_image_format_match=False)
    with pytest.raises(InvalidImageData, match="does not match"):
        conversion.convert(qcow2, "raw", "qcow2", lax)
    with pytest.raises(InvalidImageData):
        conversion.convert(qcow2, "vmdk", "raw", lax)


def test_qemu_img_failure_leaves_no_output(qcow2):
    with mock.patch.object(conversion, "QEMU_NAMES", {"qcow2": "nonsense"}):
        with pytest.raises(InvalidImageData, match="conversion to raw failed"):
            conversion.convert(qcow2, "qcow2", "raw", FormatPolicy())
    assert not qcow2.with_name("image.converted").exists()
