"""Session fixtures: the real RabbitMQ (a vhost per run), SQLite and MariaDB, and the
whole Tessera stack started as processes."""

from __future__ import annotations

import os
import uuid

import pytest
import requests

from tests.stack import Stack, Vhost
from tests.swift_aio import SwiftAIO, SwiftNotInstallable


def random_image(size: int) -> bytes:
    """``size`` random bytes to upload as a raw image: never with an MBR's boot signature
    at byte 510, which 1 in 65,536 random images would carry. Raw content that looks like
    a partition table is checked, and random partition entries fail the check (415, as
    in Glance): a test using plain random bytes would fail that rarely."""
    data = bytearray(os.urandom(size))
    data[510:512] = bytes(len(data[510:512]))
    return bytes(data)


@pytest.fixture(scope="session")
def swift():
    """A real all-in-one Swift (tests/swift_aio.py), started once per test session."""
    try:
        aio = SwiftAIO.shared()
    except SwiftNotInstallable as exc:
        pytest.skip(f"OpenStack Swift cannot be installed on this machine: {exc}")
    yield aio
    aio.stop()


@pytest.fixture(scope="session")
def vhost():
    """A vhost for tests that start services of their own."""
    vh = Vhost()
    yield vh
    vh.delete()


@pytest.fixture(scope="session", params=["sqlite", "mysql"])
def stack(request, tmp_path_factory):
    """A running stack, once on SQLite and once on MariaDB, each on a vhost of its own."""
    running = Stack(
        tmp_path_factory.mktemp(f"stack-{request.param}"), mysql=request.param == "mysql"
    )
    yield running.start()
    running.cleanup()


class Api:
    """A thin requests wrapper that talks as one project (development auth headers)."""

    def __init__(
        self,
        url: str,
        project: str = "test-project",
        roles: str = "member,reader",
        user: str = "test-user",
    ):
        self.url = url
        self.session = requests.Session()
        self.session.headers.update({"X-Project-Id": project, "X-Roles": roles, "X-User-Id": user})
        self.project = project

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=30, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def patch(self, path, changes, media="application/openstack-images-v2.1-json-patch"):
        return self.request("PATCH", path, json=changes, headers={"Content-Type": media})

    def create(self, **body) -> dict:
        resp = self.post("/v2/images", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()


@pytest.fixture
def api(stack):
    return Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def other_api(stack):
    return Api(stack.url, project=f"other-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def admin_api(stack):
    return Api(stack.url, project="admin-project", roles="admin,member,reader")


@pytest.fixture
def image(api):
    """A fresh queued image owned by ``api``'s project."""
    return api.create(
        name=f"img-{uuid.uuid4().hex[:8]}", disk_format="raw", container_format="bare"
    )
