"""auth_token's own failures reach the client in the API's JSON error shape
(services/api/keystone.py): an exception inside keystonemiddleware (here the one
Glance's install guide caused before python-memcached was a dependency: no ``memcache``
module for ``memcached_servers``) is a JSON 500, and its HTML 503 for an unreachable
Keystone is a JSON 503. Real keystonemiddleware; Keystone is a closed port."""

from __future__ import annotations

import socket
import sys

import pytest
from werkzeug.test import Client

from services.api.keystone import wrap_with_auth_token
from services.common.config import load_config


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def protected_client(tmp_path, **options) -> Client:
    keystone = f"http://127.0.0.1:{closed_port()}/identity"
    lines = [
        "[keystone_authtoken]",
        f"www_authenticate_uri = {keystone}",
        f"auth_url = {keystone}",
        "auth_type = password",
        "username = glance",
        "password = secret",
        "project_name = service",
        "user_domain_name = Default",
        "project_domain_name = Default",
        "http_connect_timeout = 2",
        *(f"{k} = {v}" for k, v in options.items()),
    ]
    path = tmp_path / "tessera.conf"
    path.write_text("\n".join(lines) + "\n")
    conf = load_config(["--config-file", str(path)])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    return Client(wrap_with_auth_token(app, conf))


def assert_json_error(resp, code: int) -> dict:
    assert resp.status_code == code, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "application/json"
    error = resp.get_json()["error"]
    assert error["code"] == code and error["title"] and error["message"]
    return error


def test_an_exception_inside_auth_token_is_a_json_500(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "memcache", None)  # import memcache fails
    client = protected_client(tmp_path, memcached_servers="127.0.0.1:1")
    resp = client.get("/v2/images", headers={"X-Auth-Token": "a-token"})
    assert_json_error(resp, 500)
    assert "memcache" in caplog.text  # logged with its cause, not shown to the client
    assert "memcache" not in resp.get_data(as_text=True)


def test_keystone_unreachable_is_a_json_503(tmp_path):
    client = protected_client(tmp_path)
    resp = client.get("/v2/images", headers={"X-Auth-Token": "a-token"})
    error = assert_json_error(resp, 503)
    assert "Keystone" in error["message"]


def test_no_token_is_still_a_json_401_with_its_challenge(tmp_path):
    resp = protected_client(tmp_path).get("/v2/images")
    assert_json_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Keystone uri=")


@pytest.mark.parametrize("path", ["/", "/versions"])
def test_version_discovery_needs_no_token(tmp_path, path):
    assert protected_client(tmp_path).get(path).status_code == 200
