"""The gateway's oslo.middleware pipeline (services/api/middleware.py) on a running stack:
/healthcheck up and down, request ids from the caller, the header on every response,
the access log, proxy headers, CORS, and ``--version`` of every command."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.stack import Stack

BIN = Path(sys.executable).parent
COMMANDS = [
    "tessera-api",
    "tessera-registry",
    "tessera-store",
    "tessera-cache",
    "tessera-run",
    "tessera-manage",
]
DASHBOARD = "https://dashboard.example.com"
ADMIN = {"X-Project-Id": "admin-project", "X-Roles": "admin"}
MEMBER = {"X-Project-Id": "some-project", "X-Roles": "member"}


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A stack behind a (pretend) proxy, with CORS for a dashboard and detailed health."""
    stack = Stack(
        tmp_path_factory.mktemp("middleware-stack"),
        sections={
            "oslo_middleware": {"enable_proxy_headers_parsing": "True"},
            "cors": {"allowed_origin": DASHBOARD},
            "healthcheck": {"detailed": "True"},
        },
    ).start()
    yield stack
    stack.cleanup()


def wait_for_log(stack, needle: str, timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in stack.logs().splitlines() if needle in ln]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# --- /healthcheck ---


def test_healthcheck_is_ok_when_registry_and_store_answer(stack):
    resp = requests.get(f"{stack.url}/healthcheck", timeout=10)
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert requests.head(f"{stack.url}/healthcheck", timeout=10).status_code == 204


def test_healthcheck_details_only_for_admins(proxied):
    url = f"{proxied.url}/healthcheck"
    accept = {"Accept": "application/json"}
    plain = requests.get(url, headers={**accept, **MEMBER}, timeout=10).json()
    assert plain == {"detailed": False, "reasons": ["OK"]}
    detailed = requests.get(url, headers={**accept, **ADMIN}, timeout=10).json()
    assert detailed["detailed"] is True
    (reason,) = detailed["reasons"]
    assert reason["class"] == "HealthcheckResult" and reason["reason"] == "OK"
    assert "registry: ok" in reason["details"] and "store: ok" in reason["details"]


def test_healthcheck_is_503_quickly_when_the_registry_stalls(proxied):
    registries = proxied.processes("registry")
    assert registries
    for p in registries:
        p.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        resp = requests.get(
            f"{proxied.url}/healthcheck",
            headers={"Accept": "application/json", **MEMBER},
            timeout=30,
        )
        took = time.monotonic() - started
    finally:
        for p in registries:
            p.send_signal(signal.SIGCONT)
    assert resp.status_code == 503, resp.text
    assert resp.json()["reasons"] == ["registry not answering"]
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert took < 5, f"the probe took {took:.1f} s"
    deadline = time.monotonic() + 20  # and recovers once the registry runs again
    while requests.get(f"{proxied.url}/healthcheck", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "healthcheck never recovered"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def keystone_cloud(tmp_path_factory):
    """A real Keystone (tests/keystone.py) and a stack with flavor = keystone."""
    from tests.keystone import Keystone

    keystone = Keystone().start()
    stack = Stack(
        tmp_path_factory.mktemp("middleware-keystone"),
        sections={
            "paste_deploy": {"flavor": "keystone"},
            "keystone_authtoken": keystone.keystone_authtoken_options(),
            "healthcheck": {"detailed": "True"},
        },
    )
    stack.ready_path = "/versions"
    try:
        stack.start()
        yield keystone, stack
    finally:
        stack.cleanup()
        keystone.stop()


def test_keystone_mode_healthcheck_needs_no_token_and_401_has_a_request_id(keystone_cloud):
    keystone, stack = keystone_cloud
    denied = requests.get(f"{stack.url}/v2/images", timeout=10)
    assert denied.status_code == 401
    assert denied.headers["x-openstack-request-id"].startswith("req-")
    accept = {"Accept": "application/json"}
    # no token, a forged admin role, a member's token: the plain answer
    for headers in ({}, {"X-Roles": "admin"}, {"X-Auth-Token": keystone.token("demo")}):
        resp = requests.get(f"{stack.url}/healthcheck", headers={**accept, **headers}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"detailed": False, "reasons": ["OK"]}
    admin = {"X-Auth-Token": keystone.token("admin")}
    resp = requests.get(f"{stack.url}/healthcheck", headers={**accept, **admin}, timeout=10)
    assert resp.json()["detailed"] is True


# --- request ids ---


def test_callers_request_id_reaches_the_registry_log(stack, api):
    caller_id = f"req-{uuid.uuid4()}"
    resp = api.get(f"/v2/images/{uuid.uuid4()}", headers={"X-OpenStack-Request-ID": caller_id})
    assert resp.status_code == 404
    # as Glance 33: the answer carries the caller's own id
    assert resp.headers["x-openstack-request-id"] == caller_id
    lines = wait_for_log(stack, caller_id)
    registry_lines = [ln for ln in lines if " registry:" in ln]
    assert registry_lines, lines
    # logged as [global local user project ...]: the gateway's own id is there too
    assert re.search(rf"\[{caller_id} req-[0-9a-f-]{{36}} ", registry_lines[0]), registry_lines


def test_invalid_callers_request_id_is_ignored(stack, api):
    resp = api.get(
        "/v2/images?limit=1", headers={"X-OpenStack-Request-ID": "req-not-a-uuid <script>"}
    )
    assert resp.status_code == 200
    answered = resp.headers["x-openstack-request-id"]
    assert re.fullmatch(
        r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", answered
    )


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/no/such/route", {}, 404),
        ("GET", "/v2/images/not-a-uuid/members/x/y", {}, 404),
        ("DELETE", "/versions", {}, 405),
        ("POST", "/v2/images", {"data": b"{", "headers": {"Content-Type": "text/plain"}}, 415),
        (
            "POST",
            "/v2/images",
            {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("GET", "/v2/images?limit=-3", {}, 400),
    ],
)
def test_every_response_carries_a_request_id(stack, api, method, path, kwargs, status):
    resp = api.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["x-openstack-request-id"].startswith("req-")


# --- access log ---


def test_one_access_log_line_per_request(stack, api):
    resp = api.get("/v2/images?limit=1&sort_key=name")
    assert resp.status_code == 200
    request_id = resp.headers["x-openstack-request-id"]
    lines = [ln for ln in wait_for_log(stack, request_id) if "tessera.access" in ln]
    assert len(lines) == 1, lines
    line = lines[0]
    assert " INFO " in line
    assert '127.0.0.1 "GET /v2/images?limit=1&sort_key=name" status 200' in line
    assert f" len {len(resp.content)} " in line
    assert re.search(r" time \d+\.\d ms ", line)
    assert line.endswith(f"request_id {request_id}")
    # oslo.log's context bracket: global id (none sent), local id, user, project
    project = api.session.headers["X-Project-Id"]
    assert f" api:tessera.access [None {request_id} test-user {project} " in line


def test_access_log_of_a_download_counts_its_bytes(stack, api, image):
    data = b"x" * (3 << 20)
    octets = {"Content-Type": "application/octet-stream"}
    assert api.put(f"/v2/images/{image['id']}/file", data=data, headers=octets).status_code == 204
    resp = api.get(f"/v2/images/{image['id']}/file")
    assert resp.content == data
    # the access line is written once the body is sent: after the store's line for it
    request_id = f"request_id {resp.headers['x-openstack-request-id']}"
    (line,) = [ln for ln in wait_for_log(stack, request_id) if "tessera.access" in ln]
    assert f'"GET /v2/images/{image["id"]}/file" status 200 len {len(data)} ' in line


# --- proxy headers, CORS, public_endpoint ---


def test_proxy_headers_are_honoured_when_enabled(proxied):
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "images.example.com",
        "X-Forwarded-For": "203.0.113.9",
    }
    resp = requests.get(f"{proxied.url}/versions", headers=forwarded, timeout=10)
    assert resp.status_code == 200
    assert resp.json()["versions"][0]["links"][0]["href"] == "https://images.example.com/v2/"
    request_id = resp.headers["x-openstack-request-id"]
    (line,) = [ln for ln in wait_for_log(proxied, request_id) if "tessera.access" in ln]
    assert '203.0.113.9 "GET /versions" status 200' in line


def test_proxy_headers_are_ignored_by_default(stack):
    resp = requests.get(
        f"{stack.url}/versions",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "images.example.com"},
        timeout=10,
    )
    assert resp.json()["versions"][0]["links"][0]["href"] == f"{stack.url}/v2/"


def test_cors_preflight_and_response(proxied):
    preflight = requests.options(
        f"{proxied.url}/v2/images",
        headers={
            "Origin": DASHBOARD,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "X-Auth-Token, Content-Type",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    assert "x-auth-token" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert preflight.headers["x-openstack-request-id"].startswith("req-")

    resp = requests.get(
        f"{proxied.url}/v2/images?limit=1", headers={"Origin": DASHBOARD, **MEMBER}, timeout=10
    )
    assert resp.headers["Access-Control-Allow-Origin"] == DASHBOARD
    assert "x-openstack-request-id" in resp.headers["Access-Control-Expose-Headers"].lower()

    other = requests.get(
        f"{proxied.url}/v2/images?limit=1",
        headers={"Origin": "https://evil.example.net", **MEMBER},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in other.headers


# --- --version ---


@pytest.mark.parametrize("command", COMMANDS)
def test_version_of_every_command(command):
    from importlib.metadata import version

    done = subprocess.run(
        [str(BIN / command), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout + done.stderr).strip() == version("tessera")
