"""Logging with oslo.log on a running stack (one stack for the module): ``log_dir`` gives
each service its own file, ``use_json`` lines parse as JSON and carry the request's ids,
one access line per request, upload and download lines with bytes, duration and MB/s, a
client error logged once without nameko's internals, and the start-up warning for an
option Tessera does not read (once, by tessera-run)."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from tests.conftest import Api
from tests.stack import Stack

SERVICES = ("run", "api", "registry", "store", "cache")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("logging-stack")
    stack = Stack(
        workdir,
        log_dir=workdir / "logs",
        use_json="True",
        debug="False",
        glance_registry_host="controller",  # not an option: warned about at start-up
    ).start()
    yield stack
    stack.cleanup()


@pytest.fixture(scope="module")
def lapi(logged):
    return Api(logged.url, project=f"project-{uuid.uuid4().hex[:8]}")


def records(stack, service: str) -> list[dict]:
    path = stack.workdir / "logs" / f"tessera-{service}.log"
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(stack, service: str, match, timeout: float = 5) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in records(stack, service) if match(r)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def request_id_of(record: dict) -> str | None:
    return (record.get("context") or {}).get("request_id")


def test_each_service_logs_json_lines_to_its_own_file(logged):
    for service in SERVICES:
        lines = records(logged, service)  # every line parses
        assert lines, service
        assert all({"message", "levelname", "name", "asctime"} <= set(r) for r in lines)
    assert any("starting the registry service" in r["message"] for r in records(logged, "registry"))


def test_the_access_line_carries_the_request_context(logged, lapi):
    resp = lapi.get("/v2/images?limit=3")
    assert resp.status_code == 200
    request_id = resp.headers["x-openstack-request-id"]
    (line,) = wait_for(logged, "api", lambda r: request_id_of(r) == request_id)
    assert line["name"] == "tessera.access"
    assert re.fullmatch(
        rf'127\.0\.0\.1 "GET /v2/images\?limit=3" status 200 len {len(resp.content)} '
        rf"time \d+\.\d ms request_id {request_id}",
        line["message"],
    ), line["message"]
    assert line["context"]["project_id"] == lapi.session.headers["X-Project-Id"]


def test_upload_and_download_lines_with_rate(logged, lapi):
    image = lapi.create(name="logged", disk_format="raw", container_format="bare")
    data = b"z" * (3 << 20)
    octets = {"Content-Type": "application/octet-stream"}
    put = lapi.put(f"/v2/images/{image['id']}/file", data=data, headers=octets)
    assert put.status_code == 204, put.text
    got = lapi.get(f"/v2/images/{image['id']}/file")
    assert got.content == data
    rate = rf"{len(data)} bytes in \d+\.\d\d s \(\d+\.\d MB/s\)"
    (received,) = wait_for(
        logged, "store", lambda r: f"received image {image['id']}" in r["message"]
    )
    assert re.fullmatch(rf"received image {image['id']}: {rate}", received["message"])
    assert request_id_of(received) == put.headers["x-openstack-request-id"]
    (sent,) = wait_for(logged, "store", lambda r: f"sent image {image['id']}" in r["message"])
    assert re.fullmatch(rf"sent image {image['id']}: {rate}", sent["message"])
    assert request_id_of(sent) == got.headers["x-openstack-request-id"]


def test_a_client_error_is_logged_once_without_nameko_internals(logged, lapi):
    missing = str(uuid.uuid4())
    resp = lapi.get(f"/v2/images/{missing}")
    assert resp.status_code == 404
    request_id = resp.headers["x-openstack-request-id"]
    (line,) = wait_for(logged, "registry", lambda r: request_id_of(r) == request_id)
    assert line["levelname"] == "INFO"
    assert line["message"] == f"registry.get_image: NotFound: No image found with ID {missing}"
    assert not line.get("traceback")
    (access,) = wait_for(logged, "api", lambda r: request_id_of(r) == request_id)
    assert " status 404 " in access["message"]


def test_an_unknown_option_is_warned_about_once(logged):
    warning = "configuration: [DEFAULT] glance_registry_host is not an option Tessera reads"
    (line,) = [r for r in records(logged, "run") if r["message"].startswith(warning)]
    assert line["levelname"] == "WARNING"
    for service in SERVICES[1:]:  # not repeated by each service of the stack
        assert not [r for r in records(logged, service) if warning in r["message"]]
