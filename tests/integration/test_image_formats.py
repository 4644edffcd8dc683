"""Format safety on upload, as Glance 33 decides it: virtual_size read as the bytes pass;
mismatches and unsafe content (backing or data files, unknown qcow2 features, QED, LUKS
v2, a bad GPT protective MBR) rejected with 415 (as Glance 33 answers), leaving the image
queued and no data behind; safe content of another format declared raw stored as raw."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.integration.test_image_data import upload, wait_for
from tests.integration.test_images_api import error_of
from tests.unit.store.test_formats import gpt_image, luks_image

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img is not installed (make system-deps)"
)

MiB = 1 << 20


def qemu_img(tmp_path, fmt: str, size: str, *options: str) -> bytes:
    path = tmp_path / f"disk.{fmt}"
    command = ["qemu-img", "create", "-q", "-f", fmt, *options, str(path), size]
    for _ in range(5):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        # qemu-img times its PBKDF on the thread's CPU clock to pick LUKS iterations, and
        # gives up when a busy machine's clock reads no time passed; that try is redone.
        if "Unable to get accurate CPU usage" not in done.stderr:
            break
    done.check_returncode()
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
    message = error_of(upload(api, image["id"], data), 415)
    assert api.get(f"/v2/images/{image['id']}").json()["status"] == "queued"
    wait_for(lambda: not list(stack.datadir.glob(f"{image['id']}*")), what="no data left")
    return message


def stored(api, image, data) -> dict:
    assert upload(api, image["id"], data).status_code == 204
    shown = api.get(f"/v2/images/{image['id']}").json()
    assert shown["status"] == "active" and shown["size"] == len(data)
    return shown


@pytest.mark.parametrize(
    "qemu_format,options",
    [
        ("qcow2", ()),
        ("luks", ("--object", "secret,id=s,data=x", "-o", "key-secret=s,iter-time=10")),
    ],
)
def test_safe_image_declared_raw_is_stored_as_raw(api, tmp_path, qemu_format, options):
    # As Glance 33: content of another format may be called raw if it passes that
    # format's safety checks; its virtual_size is then its byte size.
    data = qemu_img(tmp_path, qemu_format, "1M", *options)
    image = api.create(name=qemu_format, disk_format="raw", container_format="bare")
    shown = stored(api, image, data)
    assert shown["disk_format"] == "raw" and shown["virtual_size"] == len(data)


def test_raw_declared_qcow2_is_rejected(stack, api):
    image = api.create(name="liar", disk_format="qcow2", container_format="bare")
    message = rejected(stack, api, image, b"\0" * MiB)
    assert message == "Image disk_format qcow2 does not match stream data raw"


@pytest.mark.parametrize("declared", ["qcow2", "raw"])
def test_qcow2_with_a_backing_file_is_rejected(stack, api, tmp_path, declared):
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
    image = api.create(name="overlay", disk_format=declared, container_format="bare")
    message = rejected(stack, api, image, (tmp_path / "overlay.qcow2").read_bytes())
    assert "backing file" in message


def test_qcow2_with_an_external_data_file_is_rejected(stack, api, tmp_path):
    data = qemu_img(tmp_path, "qcow2", "64M", "-o", "data_file=data.raw")
    image = api.create(name="external", disk_format="qcow2", container_format="bare")
    assert "Image has data_file set" in rejected(stack, api, image, data)


def test_qcow2_with_an_unknown_incompatible_feature_is_rejected(stack, api, tmp_path):
    data = bytearray(qemu_img(tmp_path, "qcow2", "64M"))
    data[79] |= 1 << 5  # incompatible feature bit 5: no qemu knows it
    image = api.create(name="future", disk_format="qcow2", container_format="bare")
    message = rejected(stack, api, image, bytes(data))
    assert message == "Image failed safety checks (qcow2: Unknown QCOW2 features found)."


def test_qed_is_rejected_even_declared_raw(stack, api, tmp_path):
    image = api.create(name="qed", disk_format="raw", container_format="bare")
    message = rejected(stack, api, image, qemu_img(tmp_path, "qed", "64M"))
    assert message == "Image failed safety checks (qed: This file format is not allowed)."


def test_luks_version_2_is_rejected(stack, api):
    image = api.create(name="luks2", disk_format="raw", container_format="bare")
    message = rejected(stack, api, image, luks_image(version=2))
    assert message == "Image failed safety checks (luks: LUKS version 2 is not supported)."


def test_gpt_disk_declared_raw_is_stored_as_raw(api):
    data = gpt_image(sectors=4096)
    image = api.create(name="gpt", disk_format="raw", container_format="bare")
    assert stored(api, image, data)["virtual_size"] == len(data)


def test_gpt_disk_with_a_bad_protective_mbr_is_rejected(stack, api):
    image = api.create(name="gpt-mbr", disk_format="raw", container_format="bare")
    message = rejected(stack, api, image, gpt_image(extra_partition=True))
    assert message == "Image failed safety checks (gpt: GPT MBR defines invalid extra partitions)."


def test_images_in_a_container_are_not_inspected(api, tmp_path):
    # As Glance 33, only container_format=bare is inspected (an ova is a tar file).
    image = api.create(name="appliance", disk_format="vmdk", container_format="ova")
    assert stored(api, image, b"appliance.ovf\0" * 4096)["virtual_size"] is None
