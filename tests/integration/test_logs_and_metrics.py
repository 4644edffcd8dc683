"""Logging with oslo.log and the Prometheus metrics on a running stack (one stack for the
module, two gateway workers): ``log_dir`` gives each service its own file, ``use_json``
lines parse as JSON and carry the request's ids, one access line per request, upload and
download lines with bytes, duration and MB/s, a client error logged once without nameko's
internals, the start-up warning for an option Tessera does not read (once, by
tessera-run), and /metrics summing what both workers counted."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import pytest
import requests

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
        workers=2,
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
    # gunicorn's own lines too
    assert any(r["message"].startswith("Booting worker") for r in records(logged, "api"))


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
    # on one host the replica hands the file to the gateway, which says how much it sent
    assert re.fullmatch(
        rf"sent image {image['id']}: {rate} \(handed to the gateway\)", sent["message"]
    )
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


# --- /metrics ---


def scrape(stack) -> dict[str, float]:
    resp = requests.get(f"{stack.url}/metrics", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in resp.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


SCHEMA = 'tessera_http_requests_total{method="GET",route="/v2/schemas/image",status="200"}'
SCHEMA_OUT = 'tessera_http_response_bytes_total{method="GET",route="/v2/schemas/image"}'


def test_metrics_sum_what_both_workers_counted(logged, lapi):
    before = scrape(logged)
    ids, sent = set(), 0
    pids: set = set()
    for _ in range(20):  # new connections until both workers have answered some
        batch = [requests.get(f"{logged.url}/v2/schemas/image", timeout=30) for _ in range(10)]
        ids |= {r.headers["x-openstack-request-id"] for r in batch}
        sent += sum(len(r.content) for r in batch)
        lines = wait_for(logged, "api", lambda r, ids=ids: request_id_of(r) in ids)
        pids = {r["process"] for r in lines}
        if len(pids) == 2 and len(lines) == len(ids):
            break
    assert len(pids) == 2, "the requests all went to one worker"
    after = scrape(logged)
    assert after[SCHEMA] - before.get(SCHEMA, 0) == len(ids)
    assert after[SCHEMA_OUT] - before.get(SCHEMA_OUT, 0) == sent
    assert after['tessera_service_up{service="registry"}'] == 1.0
    assert after['tessera_service_up{service="store"}'] == 1.0
    lapi.get("/v2/images")
    listed = 'tessera_rpc_duration_seconds_count{method="list_images",service="registry"}'
    assert scrape(logged)[listed] > before.get(listed, 0)
    assert 'tessera_http_request_duration_seconds_bucket{le="0.5",method="GET",' in "".join(after)


def test_uploads_in_progress(logged, lapi):
    image = lapi.create(name="slow", disk_format="raw", container_format="bare")
    release = threading.Event()

    def body():
        yield b"a" * 65536
        release.wait(30)
        yield b"b" * 65536

    result = {}

    def upload():
        result["resp"] = lapi.put(
            f"/v2/images/{image['id']}/file",
            data=body(),
            headers={"Content-Type": "application/octet-stream"},
        )

    uploader = threading.Thread(target=upload)
    uploader.start()
    try:
        deadline = time.monotonic() + 10
        while scrape(logged).get("tessera_uploads_in_progress") != 1.0:
            assert time.monotonic() < deadline, "the upload never showed as in progress"
            time.sleep(0.1)
    finally:
        release.set()
        uploader.join(30)
    assert result["resp"].status_code == 204
    deadline = time.monotonic() + 5  # counted down when gunicorn closes the response
    while scrape(logged)["tessera_uploads_in_progress"] != 0.0:
        assert time.monotonic() < deadline, "the finished upload still shows in progress"
        time.sleep(0.1)
