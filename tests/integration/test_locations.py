"""Locations (show_multiple_locations on): an http location makes a queued image active,
its data is served through the http store, direct_url shows it, the last location stays."""

from __future__ import annotations

import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import Api, random_image
from tests.integration.test_images_api import error_of
from tests.stack import Stack

DATA = random_image(3 * (1 << 20) + 5)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(DATA)))
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()
        self.wfile.write(DATA)


@pytest.fixture(scope="module")
def origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def located(tmp_path_factory, origin):
    stack = Stack(
        tmp_path_factory.mktemp("locations"),
        show_multiple_locations=True,
        show_image_direct_url=True,
        # the origin on loopback (and port 1, nothing listening) pass the URL filter
        sections={
            "import_filtering_opts": {
                "allowed_hosts": "127.0.0.1",
                "allowed_ports": f"{origin.rsplit(':', 1)[1]},1",
            }
        },
    ).start()
    yield stack
    stack.cleanup()


@pytest.fixture
def lapi(located):
    return Api(located.url, project=f"loc-{os.urandom(4).hex()}")


def add_location(api, image_id, url, **extra):
    return api.patch(
        f"/v2/images/{image_id}",
        [{"op": "add", "path": "/locations/-", "value": {"url": url, "metadata": {}, **extra}}],
    )


def test_http_location_activates_a_queued_image(located, lapi, origin):
    image = lapi.create(name="remote", disk_format="raw", container_format="bare")
    resp = add_location(
        lapi,
        image["id"],
        f"{origin}/cirros.img",
        validation_data={
            "os_hash_algo": "sha512",
            "os_hash_value": hashlib.sha512(DATA).hexdigest(),
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "active" and body["size"] == len(DATA)
    assert body["locations"] == [{"url": f"{origin}/cirros.img", "metadata": {}}]
    assert body["direct_url"] == f"{origin}/cirros.img"
    assert body["os_hash_value"] == hashlib.sha512(DATA).hexdigest()
    assert lapi.get(f"/v2/images/{image['id']}/file").content == DATA
    ranged = lapi.get(f"/v2/images/{image['id']}/file", headers={"Range": "bytes=5-9"})
    assert ranged.status_code == 206 and ranged.content == DATA[5:10]
    # the last location cannot be removed; a second one can be added and removed
    error_of(
        lapi.patch(f"/v2/images/{image['id']}", [{"op": "remove", "path": "/locations/0"}]), 403
    )
    assert add_location(lapi, image["id"], f"{origin}/mirror.img").status_code == 200
    remove_second = [{"op": "remove", "path": "/locations/1"}]
    error_of(lapi.patch(f"/v2/images/{image['id']}", remove_second), 403)  # admin only
    admin = Api(located.url, project=lapi.project, roles="admin")
    resp = admin.patch(f"/v2/images/{image['id']}", remove_second)
    assert [loc["url"] for loc in resp.json()["locations"]] == [f"{origin}/cirros.img"]


def test_location_errors(lapi, origin, located):
    image = lapi.create(name="bad", disk_format="raw", container_format="bare")
    error_of(add_location(lapi, image["id"], "file:///etc/passwd"), 400)
    error_of(add_location(lapi, image["id"], f"{origin}/x", metadata="nope"), 400)
    unreachable = add_location(lapi, image["id"], "http://127.0.0.1:1/none")
    error_of(unreachable, 503)
    for refused in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x"):
        assert "filtering" in error_of(add_location(lapi, image["id"], refused), 400)
    assert "filtering" in error_of(add_location(lapi, image["id"], f"{origin}0/x"), 400)  # port
    assert lapi.get(f"/v2/images/{image['id']}").json()["status"] == "queued"


def test_locations_hidden_by_default(stack, api, origin):
    image = api.create(name="plain", disk_format="raw", container_format="bare")
    assert "locations" not in image and "direct_url" not in image
    error_of(add_location(api, image["id"], f"{origin}/a.img"), 403)
