"""The real Keystone of tests/keystone.py: tokens validate, the catalog carries the image
service, the roles are what the tests of policy will rely on."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import openstack
import pytest
import requests
import webob
from keystonemiddleware import auth_token

from tests.keystone import Keystone

# The first test also pays for installing Keystone's venv when it is not cached yet (~1 min).
pytestmark = pytest.mark.timeout(600)

IMAGE_URL = "http://127.0.0.1:9292"


@pytest.fixture(scope="session")
def keystone(tmp_path_factory):
    ks = Keystone(tmp_path_factory.mktemp("keystone")).start(IMAGE_URL)
    yield ks
    ks.stop()


def validate(keystone: Keystone, token: str) -> requests.Response:
    return requests.get(
        f"{keystone.auth_url}/auth/tokens",
        timeout=30,
        headers={"X-Auth-Token": keystone.token("admin"), "X-Subject-Token": token},
    )


def test_demo_token_is_issued_and_validates(keystone):
    resp = validate(keystone, keystone.token("demo"))

    assert resp.status_code == 200, resp.text
    token = resp.json()["token"]
    assert token["user"]["name"] == "demo"
    assert token["project"]["id"] == keystone.project_id("demo")
    assert {r["name"] for r in token["roles"]} == {"member", "reader"}
    assert validate(keystone, "not-a-token").status_code == 404


def image_endpoints(keystone: Keystone, name: str) -> dict:
    resp = requests.get(
        f"{keystone.auth_url}/auth/catalog",
        timeout=30,
        headers={"X-Auth-Token": keystone.token(name)},
    )
    assert resp.status_code == 200, resp.text
    [image] = [s for s in resp.json()["catalog"] if s["type"] == "image"]
    assert image["name"] == "glance"
    return {e["interface"]: (e["url"], e["region"]) for e in image["endpoints"]}


def test_demo_catalog_has_the_image_service_at_the_given_url(keystone):
    assert image_endpoints(keystone, "demo") == {
        iface: (IMAGE_URL, "RegionOne") for iface in ("public", "internal", "admin")
    }


def test_image_endpoint_can_be_moved(keystone):
    try:
        keystone.set_image_endpoint("http://127.0.0.1:19292/")
        assert image_endpoints(keystone, "alt") == {
            iface: ("http://127.0.0.1:19292", "RegionOne")
            for iface in ("public", "internal", "admin")
        }
    finally:
        keystone.set_image_endpoint(IMAGE_URL)
    assert image_endpoints(keystone, "alt")["public"] == (IMAGE_URL, "RegionOne")


def test_viewer_has_only_reader(keystone):
    token = validate(keystone, keystone.token("viewer")).json()["token"]
    assert [r["name"] for r in token["roles"]] == ["reader"]
    assert token["project"]["id"] == keystone.project_id("demo")

    resp = requests.get(
        f"{keystone.auth_url}/role_assignments",
        timeout=30,
        params={"user.id": keystone.user_id("viewer"), "include_names": 1},
        headers={"X-Auth-Token": keystone.token("admin")},
    )
    assert resp.status_code == 200, resp.text
    assert [
        (a["role"]["name"], a["scope"]["project"]["name"]) for a in resp.json()["role_assignments"]
    ] == [("reader", "demo")]


def test_authtoken_options_let_keystonemiddleware_validate_tokens(keystone):
    """The options a Tessera config gets: the glance service user validates a user's token."""
    options = keystone.keystone_authtoken_options()
    assert sorted(options) == sorted(
        [
            "www_authenticate_uri",
            "auth_url",
            "auth_type",
            "project_domain_name",
            "user_domain_name",
            "project_name",
            "username",
            "password",
        ]
    )
    seen = {}

    def app(environ, start_response):
        seen.update(project=environ["HTTP_X_PROJECT_ID"], roles=environ["HTTP_X_ROLES"])
        start_response("200 OK", [])
        return [b""]

    middleware = auth_token.AuthProtocol(app, {**options, "delay_auth_decision": "false"})
    ok = webob.Request.blank("/v2/images", headers={"X-Auth-Token": keystone.token("viewer")})
    assert ok.get_response(middleware).status_code == 200
    assert seen == {"project": keystone.project_id("demo"), "roles": "reader"}
    bad = webob.Request.blank("/v2/images", headers={"X-Auth-Token": "not-a-token"})
    assert bad.get_response(middleware).status_code == 401


# openstacksdk's warnings about its own internals (e.g. "Support for InfluxDB ...")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:openstack")
def test_openstacksdk_with_credentials(keystone):
    conn = openstack.connect(
        load_yaml_config=False, load_envvars=False, **keystone.credentials("alt")
    )
    assert conn.current_project_id == keystone.project_id("alt")
    assert conn.endpoint_for("image") == IMAGE_URL
    # identity calls go to the catalog's identity endpoint: it must be this Keystone's
    admin = openstack.connect(
        load_yaml_config=False, load_envvars=False, **keystone.credentials("admin")
    )
    assert admin.endpoint_for("identity") == keystone.auth_url
    viewer = admin.identity.get_user(keystone.user_id("viewer"))
    assert viewer.default_project_id == keystone.project_id("demo")


def test_openstack_cli_with_env(keystone):
    cli = shutil.which("openstack", path=str(Path(sys.executable).parent)) or "openstack"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    out = subprocess.run(
        [cli, "catalog", "show", "image", "-f", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, **keystone.env("alt")},
    )
    assert out.returncode == 0, out.stderr
    endpoints = json.loads(out.stdout)["endpoints"]
    assert {(e["interface"], e["url"]) for e in endpoints} == {
        (iface, IMAGE_URL) for iface in ("public", "internal", "admin")
    }
