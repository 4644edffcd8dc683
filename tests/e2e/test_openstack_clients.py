"""Tessera as the image endpoint of a real Keystone: the operator's install-guide
configuration, and the real clients (openstack CLI, python-glanceclient, openstacksdk)
finding it through the catalog."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from tests.keystone import Keystone
from tests.stack import Stack

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def keystone():
    ks = Keystone().start()
    yield ks
    ks.stop()


@pytest.fixture(scope="module")
def cloud(keystone, tmp_path_factory):
    """Tessera with flavor = keystone, registered as the catalog's image service."""
    stack = Stack(
        tmp_path_factory.mktemp("keystone-stack"),
        sections={
            "paste_deploy": {"flavor": "keystone"},
            "keystone_authtoken": keystone.keystone_authtoken_options(),
        },
    )
    stack.ready_path = "/versions"
    stack.start()
    keystone.set_image_endpoint(stack.url)
    yield stack
    stack.cleanup()


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory) -> Path:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (make system-deps)")
    path = tmp_path_factory.mktemp("img") / "cirros.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def openstack(keystone, user: str, *args: str, check: bool = True):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OS_")}, **keystone.env(user)}
    proc = subprocess.run(
        [str(BIN / "openstack"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr}"
    return proc


def os_json(keystone, user: str, *args: str):
    return json.loads(openstack(keystone, user, *args, "-f", "json").stdout)


def test_no_token_is_401(cloud):
    resp = requests.get(f"{cloud.url}/v2/images", timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")
    assert resp.json()["error"]["code"] == 401
    resp = requests.get(f"{cloud.url}/v2/images", headers={"X-Auth-Token": "bogus"}, timeout=10)
    assert resp.status_code == 401
    # version discovery needs no token
    assert requests.get(f"{cloud.url}/versions", timeout=10).status_code == 200


@pytest.mark.timeout(300)  # 15 CLI runs: 77 s on a quiet machine, past 120 s under load
def test_openstack_cli_lifecycle(keystone, cloud, qcow2, tmp_path):
    name = f"cirros-{uuid.uuid4().hex[:6]}"
    created = os_json(
        keystone,
        "admin",
        "image",
        "create",
        name,
        "--file",
        str(qcow2),
        "--disk-format",
        "qcow2",
        "--container-format",
        "bare",
        "--public",
    )
    assert created["status"] == "active" and created["visibility"] == "public"
    data = qcow2.read_bytes()
    assert created["checksum"] == hashlib.md5(data).hexdigest()
    image_id = created["id"]

    listed = os_json(keystone, "demo", "image", "list")
    assert name in {i["Name"] for i in listed}
    shown = os_json(keystone, "demo", "image", "show", name)
    assert shown["id"] == image_id and shown["disk_format"] == "qcow2"
    assert shown["size"] == len(data) and shown["virtual_size"] == 64 << 20

    saved = tmp_path / "saved.qcow2"
    openstack(keystone, "demo", "image", "save", "--file", str(saved), name)
    assert saved.read_bytes() == data

    openstack(keystone, "admin", "image", "set", "--property", "os_distro=cirros", name)
    assert os_json(keystone, "demo", "image", "show", name)["properties"]["os_distro"] == "cirros"

    openstack(keystone, "admin", "image", "set", "--deactivate", name)
    assert os_json(keystone, "admin", "image", "show", name)["status"] == "deactivated"
    assert (
        openstack(
            keystone, "demo", "image", "save", "--file", str(saved), name, check=False
        ).returncode
        != 0
    )
    openstack(keystone, "admin", "image", "set", "--activate", name)
    assert os_json(keystone, "admin", "image", "show", name)["status"] == "active"

    # a member may not delete the admin's public image
    assert openstack(keystone, "demo", "image", "delete", name, check=False).returncode != 0
    openstack(keystone, "admin", "image", "delete", name)
    assert openstack(keystone, "admin", "image", "show", image_id, check=False).returncode != 0


def test_sharing_between_projects(keystone, cloud):
    name = f"shared-{uuid.uuid4().hex[:6]}"
    image = os_json(
        keystone,
        "demo",
        "image",
        "create",
        name,
        "--shared",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
    )
    alt_project = keystone.project_id("alt")
    # alt cannot see it before it is shared
    assert openstack(keystone, "alt", "image", "show", image["id"], check=False).returncode
    os_json(keystone, "demo", "image", "add", "project", image["id"], alt_project)
    # shared but pending: not in alt's list, but visible when asked for
    assert name not in {i["Name"] for i in os_json(keystone, "alt", "image", "list")}
    pending = os_json(keystone, "alt", "image", "list", "--member-status", "pending")
    assert name in {i["Name"] for i in pending}
    openstack(keystone, "alt", "image", "set", "--accept", image["id"])
    assert name in {i["Name"] for i in os_json(keystone, "alt", "image", "list")}
    members = os_json(keystone, "demo", "image", "member", "list", image["id"])
    assert [(m["Member ID"], m["Status"]) for m in members] == [(alt_project, "accepted")]
    # alt may not change or delete it
    assert openstack(
        keystone, "alt", "image", "set", "--name", "mine", image["id"], check=False
    ).returncode
    assert openstack(keystone, "alt", "image", "delete", image["id"], check=False).returncode
    openstack(keystone, "demo", "image", "remove", "project", image["id"], alt_project)
    assert openstack(keystone, "alt", "image", "show", image["id"], check=False).returncode
    openstack(keystone, "demo", "image", "delete", image["id"])


def test_isolation_and_roles(keystone, cloud):
    private = os_json(
        keystone,
        "demo",
        "image",
        "create",
        f"mine-{uuid.uuid4().hex[:6]}",
        "--private",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
    )
    # another project sees nothing of it and can do nothing to it
    assert openstack(keystone, "alt", "image", "show", private["id"], check=False).returncode
    assert private["id"] not in {i["ID"] for i in os_json(keystone, "alt", "image", "list")}
    for args in (("set", "--name", "x"), ("delete",), ("add", "project")):
        extra = (keystone.project_id("alt"),) if args[0] == "add" else ()
        proc = openstack(keystone, "alt", "image", *args, private["id"], *extra, check=False)
        assert proc.returncode != 0
    # a reader of the owning project sees it but cannot write
    assert os_json(keystone, "viewer", "image", "show", private["id"])["id"] == private["id"]
    assert openstack(keystone, "viewer", "image", "create", "nope", check=False).returncode
    assert openstack(
        keystone, "viewer", "image", "set", "--name", "x", private["id"], check=False
    ).returncode
    openstack(keystone, "demo", "image", "delete", private["id"])


def test_glanceclient_through_the_catalog(keystone, cloud):
    from glanceclient import Client

    glance = Client("2", session=keystone.session("demo"))
    image = glance.images.create(name="gc", disk_format="raw", container_format="bare")
    glance.images.upload(image.id, io.BytesIO(b"glance client bytes"))
    assert b"".join(glance.images.data(image.id)) == b"glance client bytes"
    assert image.id in {i.id for i in glance.images.list()}
    glance.images.delete(image.id)


def sdk_connection(keystone, user: str):
    import openstack as sdk

    creds = keystone.credentials(user)
    return sdk.connect(
        auth_url=creds["auth_url"],
        username=creds["username"],
        password=creds["password"],
        project_name=creds["project_name"],
        user_domain_name=creds["user_domain_name"],
        project_domain_name=creds["project_domain_name"],
        region_name=creds.get("region_name"),
    )


def test_openstacksdk_through_the_catalog(keystone, cloud):
    conn = sdk_connection(keystone, "demo")
    image = conn.image.create_image(
        name="sdk",
        data=b"sdk bytes",
        disk_format="raw",
        container_format="bare",
        allow_duplicates=True,
    )
    fetched = conn.image.get_image(image.id)
    assert fetched.status == "active" and fetched.size == len(b"sdk bytes")
    assert conn.image.download_image(fetched).content == b"sdk bytes"
    assert image.id in {i.id for i in conn.image.images()}
    conn.image.delete_image(image.id)
    conn.close()


@pytest.mark.timeout(300)  # a dozen CLI runs, each a few seconds on a loaded machine
def test_member_deactivates_and_reactivates_its_own_image(keystone, cloud, tmp_path):
    """Glance 33's defaults: ``deactivate`` and ``reactivate`` are admin or a member of the
    owning project; a reader of that project gets 403, another project 404.

    openstacksdk's ``deactivate_image``/``reactivate_image`` (4.x) post the action and
    ignore the answer, so a refusal does not make them (or ``openstack image set``) fail:
    the reader's refusals are checked as the status staying put, and the 403 itself
    through the SDK's own image adapter (found through the catalog) and a plain token."""
    data = tmp_path / "data.raw"
    data.write_bytes(b"member-owned bytes")
    name = f"deact-{uuid.uuid4().hex[:6]}"
    image = os_json(
        keystone,
        "demo",
        "image",
        "create",
        name,
        "--file",
        str(data),
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--private",
    )
    assert image["status"] == "active"
    image_id = image["id"]
    actions = f"{cloud.url}/v2/images/{image_id}/actions"

    def post_as(user: str, action: str) -> int:
        headers = {"X-Auth-Token": keystone.token(user)}
        return requests.post(f"{actions}/{action}", headers=headers, timeout=30).status_code

    def status() -> str:
        return os_json(keystone, "demo", "image", "show", image_id)["status"]

    member, reader = sdk_connection(keystone, "demo"), sdk_connection(keystone, "viewer")
    try:
        # the openstack CLI, as the member (role member) of the owning project
        openstack(keystone, "demo", "image", "set", "--deactivate", image_id)
        assert status() == "deactivated"
        openstack(keystone, "viewer", "image", "set", "--activate", image_id, check=False)
        assert status() == "deactivated"
        assert post_as("viewer", "reactivate") == 403
        assert post_as("alt", "reactivate") == 404
        openstack(keystone, "demo", "image", "set", "--activate", image_id)
        assert status() == "active"
        openstack(keystone, "viewer", "image", "set", "--deactivate", image_id, check=False)
        assert status() == "active"
        assert post_as("viewer", "deactivate") == 403

        # openstacksdk, the same rules
        member.image.deactivate_image(image_id)
        assert member.image.get_image(image_id).status == "deactivated"
        reader.image.reactivate_image(image_id)
        assert member.image.get_image(image_id).status == "deactivated"
        refused = reader.image.post(f"/images/{image_id}/actions/reactivate")
        assert refused.status_code == 403, refused.text
        member.image.reactivate_image(image_id)
        assert member.image.get_image(image_id).status == "active"
        reader.image.deactivate_image(image_id)
        assert member.image.get_image(image_id).status == "active"
        refused = reader.image.post(f"/images/{image_id}/actions/deactivate")
        assert refused.status_code == 403, refused.text
        assert member.image.download_image(image_id).content == b"member-owned bytes"
    finally:
        member.close()
        reader.close()
        openstack(keystone, "demo", "image", "delete", image_id)
