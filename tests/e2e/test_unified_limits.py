"""Quotas from Keystone's unified limits (``use_keystone_limits``, ``[oslo_limit]``): limits
created with the ``openstack registered limit create`` / ``limit create`` commands against a
real Keystone, enforced by Tessera on SQLite and MariaDB as Glance 33 enforces them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.keystone import ACCOUNTS, REGION, Keystone
from tests.stack import Stack

BIN = Path(sys.executable).parent
MIB = 1 << 20

# every project's defaults, and the demo and alt projects' own limits
REGISTERED = {
    "image_size_total": 1000,
    "image_stage_total": 1000,
    "image_count_total": 100,
    "image_count_uploading": 100,
}
PROJECT_LIMITS = {
    "demo": {"image_size_total": 2, "image_count_uploading": 1, "image_stage_total": 1},
    "alt": {"image_count_total": 2},
}


def openstack(keystone, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(keystone.env("admin"))
    proc = subprocess.run(
        [str(BIN / "openstack"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"openstack {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def registered_limit(keystone, resource: str, default: int) -> None:
    openstack(
        keystone, "registered", "limit", "create", "--service", "glance",
        "--region", REGION, "--default-limit", str(default), resource,
    )  # fmt: skip


def project_limit(keystone, project: str, resource: str, value: int) -> None:
    openstack(
        keystone, "limit", "create", "--service", "glance", "--region", REGION,
        "--project", project, "--resource-limit", str(value), resource,
    )  # fmt: skip


@pytest.fixture(scope="module")
def keystone():
    ks = Keystone().start()
    # the glance service user reads every project's limits (Glance's guide: system reader)
    reader = ks._admin("GET", "/roles?name=reader")["roles"][0]["id"]
    ks._admin("PUT", f"/system/users/{ks.user_id('glance')}/roles/{reader}")
    # the CLI runs in parallel (each run spends seconds importing); registered limits go
    # first, as an operator would create them
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda item: registered_limit(ks, *item), REGISTERED.items()))
        list(
            pool.map(
                lambda item: project_limit(ks, *item),
                [(p, r, v) for p, limits in PROJECT_LIMITS.items() for r, v in limits.items()],
            )
        )
    yield ks
    ks.stop()


def image_endpoint_id(keystone) -> str:
    service = keystone._admin("GET", "/services?type=image")["services"][0]["id"]
    endpoints = keystone._admin("GET", f"/endpoints?service_id={service}&interface=public")
    return endpoints["endpoints"][0]["id"]


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def cloud(request, keystone, tmp_path_factory):
    glance = ACCOUNTS["glance"]
    stack = Stack(
        tmp_path_factory.mktemp(f"limits-{request.param}"),
        mysql=request.param == "mysql",
        sections={
            # user_storage_quota would refuse every upload: unified limits replace it
            "DEFAULT": {"use_keystone_limits": True, "user_storage_quota": "1"},
            "paste_deploy": {"flavor": "keystone"},
            "keystone_authtoken": keystone.keystone_authtoken_options(),
            "oslo_limit": {
                "auth_url": keystone.url,
                "auth_type": "password",
                "user_domain_id": "default",
                "username": glance.username,
                "password": glance.password,
                "system_scope": "all",
                "endpoint_id": image_endpoint_id(keystone),
            },
        },
    )
    stack.ready_path = "/versions"
    stack.start()
    keystone.set_image_endpoint(stack.url)
    yield stack
    stack.cleanup()


def call(keystone, cloud, user, method, path, **kwargs):
    headers = {"X-Auth-Token": keystone.token(user), **kwargs.pop("headers", {})}
    return requests.request(method, cloud.url + path, headers=headers, timeout=30, **kwargs)


def create(keystone, cloud, user):
    body = {"name": f"limits-{uuid.uuid4().hex[:6]}", "disk_format": "raw"}
    body["container_format"] = "bare"
    return call(keystone, cloud, user, "POST", "/v2/images", json=body)


def upload(keystone, cloud, user, image_id, data):
    return call(
        keystone, cloud, user, "PUT", f"/v2/images/{image_id}/file",
        data=data, headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip


def status(keystone, cloud, image_id):
    return call(keystone, cloud, "admin", "GET", f"/v2/images/{image_id}").json()["status"]


def assert_over_limit(resp, resource):
    assert resp.status_code == 413, resp.text
    message = resp.json()["error"]["message"]
    assert "quota threshold was breached" in message
    assert resource in message


def test_image_count_total(keystone, cloud):
    made = [create(keystone, cloud, "alt") for _ in range(2)]
    assert [r.status_code for r in made] == [201, 201]
    assert_over_limit(create(keystone, cloud, "alt"), "image_count_total")
    # another project has the registered default
    assert create(keystone, cloud, "demo").status_code == 201
    # a deleted image no longer counts
    assert call(keystone, cloud, "alt", "DELETE", f"/v2/images/{made[0].json()['id']}").ok
    assert create(keystone, cloud, "alt").status_code == 201


def test_image_size_total_on_upload(keystone, cloud):
    big = create(keystone, cloud, "demo").json()["id"]
    # 3 MiB declared, against a 2 MiB limit: refused before a byte is stored
    assert_over_limit(upload(keystone, cloud, "demo", big, b"\0" * 3 * MIB), "image_size_total")
    assert status(keystone, cloud, big) == "queued"
    fits = create(keystone, cloud, "demo").json()["id"]
    assert upload(keystone, cloud, "demo", fits, b"\1" * 2 * MIB).status_code == 204
    # the project now stores 2 MiB: one more MiB is over the limit
    assert_over_limit(upload(keystone, cloud, "demo", big, b"\2" * MIB), "image_size_total")
    usage = call(keystone, cloud, "demo", "GET", "/v2/info/usage").json()["usage"]
    assert usage["image_size_total"] == {"limit": 2, "usage": 2}
    assert usage["image_count_uploading"] == {"limit": 1, "usage": 0}
    assert usage["image_stage_total"]["limit"] == 1
    assert usage["image_count_total"]["limit"] == REGISTERED["image_count_total"]
    # the data of a deleted image no longer counts
    assert call(keystone, cloud, "demo", "DELETE", f"/v2/images/{fits}").ok
    assert upload(keystone, cloud, "demo", big, b"\3" * MIB).status_code == 204


def test_image_count_uploading(keystone, cloud):
    slow, second = (create(keystone, cloud, "demo").json()["id"] for _ in range(2))
    release = threading.Event()

    def body():  # an upload that stays in saving until released
        yield b"\0" * 1024
        release.wait(30)
        yield b"\0" * 1024

    result = {}
    sender = threading.Thread(
        target=lambda: result.setdefault("resp", upload(keystone, cloud, "demo", slow, body()))
    )
    sender.start()
    try:
        deadline = time.monotonic() + 20
        while status(keystone, cloud, slow) != "saving" and time.monotonic() < deadline:
            time.sleep(0.1)
        usage = call(keystone, cloud, "demo", "GET", "/v2/info/usage").json()["usage"]
        assert usage["image_count_uploading"] == {"limit": 1, "usage": 1}
        assert_over_limit(
            upload(keystone, cloud, "demo", second, b"\0" * 1024), "image_count_uploading"
        )
        assert status(keystone, cloud, second) == "queued"
    finally:
        release.set()
        sender.join(30)
    assert result["resp"].status_code == 204
    assert upload(keystone, cloud, "demo", second, b"\0" * 1024).status_code == 204


def test_image_stage_total(keystone, cloud):
    staged, second = (create(keystone, cloud, "demo").json()["id"] for _ in range(2))

    def stage(image_id, data):
        return call(
            keystone, cloud, "demo", "PUT", f"/v2/images/{image_id}/stage",
            data=data, headers={"Content-Type": "application/octet-stream"},
        )  # fmt: skip

    # 2 MiB declared against demo's 1 MiB of staging: refused, nothing staged
    assert_over_limit(stage(staged, b"\0" * 2 * MIB), "image_stage_total")
    assert status(keystone, cloud, staged) == "queued"
    assert stage(staged, b"\4" * MIB).status_code == 204
    # the staging area now holds demo's 1 MiB
    assert_over_limit(stage(second, b"\5" * MIB), "image_stage_total")
    usage = call(keystone, cloud, "demo", "GET", "/v2/info/usage").json()["usage"]
    assert usage["image_stage_total"] == {"limit": 1, "usage": 1}
    assert usage["image_count_uploading"] == {"limit": 1, "usage": 1}
    imported = call(
        keystone, cloud, "demo", "POST", f"/v2/images/{staged}/import",
        json={"method": {"name": "glance-direct"}},
    )  # fmt: skip
    assert imported.status_code == 202, imported.text
    deadline = time.monotonic() + 60
    while status(keystone, cloud, staged) != "active" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status(keystone, cloud, staged) == "active"
    # staged data imported: the staging area is free again
    assert stage(second, b"\5" * MIB).status_code == 204
