"""Format safety on upload: virtual_size read as the bytes pass, mismatches and unsafe
qcow2 rejected with 400, leaving the image queued and no data behind."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.integration.test_image_data import upload, wait_for
from tests.integration.test_images_api import error_of

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is not installed (make system-deps)"
)

MiB = 1 << 20


def qemu_img(tmp_path, fmt: str, size: str, *options: str) -> bytes:
    path = tmp_path / f"disk.{fmt}"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", fmt, *options, str(path), size], check=True, cwd=tmp_path
    )
    return path.read_bytes()


@pytest.mark.parametrize(
    "disk_format,qemu_format",
    [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vhdx", "vhdx"), ("vdi", "vdi"), ("vhd", "vpc")],
)
def test_virtual_size_is_read(api, tmp_path, disk_format, qemu_format):
    data = qemu_img(tmp_path, qemu_format, "64M")
    info = json.loads(
        subprocess.run(
            [
                "qemu-img",
                "info",
                "--output=json",
                "-f",
                qemu_format,
                str(tmp_path / f"disk.{qemu_format}"),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    image = api.create(name=disk_format, disk_format=disk_format, container_format="bare")
    assert upload(api, image["id"], data).status_code == 204
    shown = api.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active"
    assert shown["virtual_size"] == info["virtual-size"]
    assert shown["size"] == len(data)


def rejected(stack, api, image, data) -> str:
    message = error_of(upload(api, image["id"], data), 400)
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")
    return message


def test_qcow2_declared_raw_is_rejected(stack, api, tmp_path):
    image = api.create(name="sneaky", disk_format="raw", container_format="bare")
    assert "does not match" in rejected(stack, api, image, qemu_img(tmp_path, "qcow2", "1G"))


def test_raw_declared_qcow2_is_rejected(stack, api):
    image = api.create(name="liar", disk_format="qcow2", container_format="bare")
    assert "does not match" in rejected(stack, api, image, b"\0" * MiB)


def test_qcow2_with_a_backing_file_is_rejected(stack, api, tmp_path):
    qemu_img(tmp_path, "qcow2", "64M")
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "disk.qcow2",
            "-F",
            "qcow2",
            "overlay.qcow2",
        ],
        check=True,
        cwd=tmp_path,
    )
    image = api.create(name="overlay", disk_format="qcow2", container_format="bare")
    message = rejected(stack, api, image, (tmp_path / "overlay.qcow2").read_bytes())
    assert "backing file" in message


def test_qcow2_with_an_external_data_file_is_rejected(stack, api, tmp_path):
    data = qemu_img(tmp_path, "qcow2", "64M", "-o", "data_file=data.raw")
    image = api.create(name="external", disk_format="qcow2", container_format="bare")
    assert "data file" in rejected(stack, api, image, data)
