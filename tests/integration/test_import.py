"""Interoperable import on a real stack (SQLite and MariaDB): discovery, glance-direct
(stage + import), web-download from a web server on loopback (allowed by this stack's
[import_filtering_opts]), the import lock, tasks and their progress, and the hostile
cases: filtered hops, lying sizes, unsafe content, a store replica killed mid-import."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import Api, random_image
from tests.integration.test_image_data import MiB, wait_for
from tests.integration.test_images_api import error_of
from tests.integration.test_notifications import Listener
from tests.integration.test_store_replicas import store_consumers, store_pids, writer_of
from tests.stack import Stack

OCTETS = {"Content-Type": "application/octet-stream"}
# format_task_notification's keys (glance/notifier.py)
TASK_KEYS = {"id", "type", "status", "result", "owner", "message", "expires_at"}
TASK_KEYS |= {"created_at", "updated_at", "deleted", "deleted_at"}


class Release:
    """Lets ``/slow/`` sources finish (tests/web_source.py waits for a file)."""

    path: Path | None = None

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def set(self) -> None:
        self.path.touch()

    @contextmanager
    def holding(self):
        """``/slow/`` sources hold back their last bytes until the block ends."""
        self.clear()
        try:
            yield
        finally:
            self.set()


class Source:
    root: Path | None = None
    release = Release()


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """tests/web_source.py in a process of its own, serving Source.root."""
    Source.root = tmp_path_factory.mktemp("web-source")
    Source.release.path = Source.root / "release"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.web_source", str(Source.root)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{int(proc.stdout.readline())}"
    finally:
        proc.kill()
        proc.wait()


def allowing(web: str) -> dict:
    """``[import_filtering_opts]`` letting a stack web-download from ``web`` (on loopback)."""
    return {"allowed_hosts": "127.0.0.1", "allowed_ports": urlsplit(web).port}


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def importing(request, web, tmp_path_factory):
    """A stack allowing web-download from the loopback web server, with a short lease."""
    stack = Stack(
        tmp_path_factory.mktemp(f"import-{request.param}"),
        mysql=request.param == "mysql",
        sections={
            "DEFAULT": {"image_size_cap": 16 * MiB},
            "store": {"upload_lease_seconds": 3},
            "import_filtering_opts": allowing(web),
            "oslo_messaging_notifications": {"driver": "messagingv2"},
        },
    )
    listener = Listener(stack.vhost.transport_url)
    try:
        stack.start()
        stack.database = request.param
        stack.heard = listener.heard
        yield stack
    finally:
        listener.stop()
        stack.cleanup()


@pytest.fixture
def iapi(importing):
    return Api(importing.url, project=f"imp-{uuid.uuid4().hex[:8]}")


def new_image(api, **extra) -> str:
    body = {"name": "imp", "disk_format": "raw", "container_format": "bare", **extra}
    return api.create(**body)["id"]


def serve(data: bytes) -> str:
    name = uuid.uuid4().hex
    (Source.root / name).write_bytes(data)
    return name


def web_import(api, image_id: str, uri: str):
    return api.post(
        f"/v2/images/{image_id}/import", json={"method": {"name": "web-download", "uri": uri}}
    )


def settled(api, image_id: str) -> dict:
    """The image once its import ended (active, or queued again, and its import lock
    released: an import to several stores that need not all succeed is active after
    the first one)."""

    def ended() -> bool:
        image = api.get(f"/v2/images/{image_id}").json()
        return image["status"] in ("active", "queued") and "os_glance_import_task" not in image

    wait_for(
        ended,
        timeout=30,
        what=f"the import of {image_id} to end",
    )
    return api.get(f"/v2/images/{image_id}").json()


def tasks_of(api, image_id: str) -> list:
    resp = api.get(f"/v2/images/{image_id}/tasks")
    assert resp.status_code == 200, resp.text
    return resp.json()["tasks"]


def leftovers(stack, image_id: str) -> list:
    return list(stack.datadir.glob(f"{image_id}*")) + list(
        (stack.workdir / "data" / "staging").glob(f"{image_id}*")
    )


def assert_failed(stack, api, image_id: str, *words: str) -> dict:
    image = settled(api, image_id)
    assert image["status"] == "queued"
    assert image["os_glance_failed_import"] == "file"
    assert "os_glance_import_task" not in image and "os_glance_importing_to_stores" not in image
    (task,) = tasks_of(api, image_id)
    assert task["status"] == "failure" and task["expires_at"]
    for word in words:
        assert word in task["message"], task["message"]
    wait_for(lambda: not leftovers(stack, image_id), what="no data left behind")
    stack.heard.wait_for(task["id"], "task.failure")
    return task


def test_discovery(importing, iapi):
    assert iapi.get("/v2/info/import").json() == {
        "import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ["glance-direct", "web-download"],  # copy-image: not implemented
        }
    }
    resp = iapi.post("/v2/images", json={"name": "h"})
    assert resp.headers["OpenStack-image-import-methods"] == "glance-direct,web-download"
    assert "copy-image" in importing.logs() and "does not implement" in importing.logs()


def test_glance_direct(importing, iapi):
    data = random_image(3 * MiB + 5)
    image_id = new_image(iapi)
    error_of(
        iapi.post(f"/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}}), 409
    )
    resp = iapi.put(f"/v2/images/{image_id}/stage", data=data, headers=OCTETS)
    assert resp.status_code == 204, resp.text
    staged = iapi.get(f"/v2/images/{image_id}").json()
    assert (staged["status"], staged["size"]) == ("uploading", len(data))
    assert (importing.workdir / "data" / "staging" / image_id).stat().st_size == len(data)
    error_of(iapi.put(f"/v2/images/{image_id}/stage", data=b"x", headers=OCTETS), 409)
    resp = iapi.post(f"/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}})
    assert resp.status_code == 202, resp.text
    # a second import while (or after) the first runs: the image is no longer staged
    error_of(
        iapi.post(f"/v2/images/{image_id}/import", json={"method": {"name": "glance-direct"}}), 409
    )
    image = settled(iapi, image_id)
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert not any(k.startswith("os_glance") for k in image)
    assert iapi.get(f"/v2/images/{image_id}/file").content == data
    (task,) = tasks_of(iapi, image_id)
    assert task["type"] == "api_image_import" and task["status"] == "success"
    assert task["result"] == {"image_id": image_id} and task["bytes_done"] == len(data)
    assert task["input"]["import_req"] == {"method": {"name": "glance-direct"}}
    assert task["owner"] == iapi.project and task["user_id"] == "test-user"
    assert (task["deleted"], task["deleted_at"]) == (False, None)  # Glance's rows
    assert not list((importing.workdir / "data" / "staging").glob(f"{image_id}*"))
    # Glance's task notifications, with Glance's payload (no input)
    events = importing.heard.wait_for(
        task["id"], "task.create", "task.run", "task.processing", "task.success"
    )
    success = next(e for e in events if e["event_type"] == "task.success")
    assert set(success["payload"]) == TASK_KEYS and success["payload"]["status"] == "success"
    importing.heard.wait_for(image_id, "image.prepare", "image.upload", "image.activate")


def test_stage_refusals_leave_nothing_staged(importing, iapi, web, tmp_path):
    from tests.integration.test_image_formats import qemu_img

    qemu_img(tmp_path, "qcow2", "64M")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", "disk.qcow2", "-F", "qcow2", "o.qcow2"],
        check=True,
        cwd=tmp_path,
    )
    image_id = new_image(iapi, disk_format="qcow2")
    body = (tmp_path / "o.qcow2").read_bytes()
    assert "backing file" in error_of(
        iapi.put(f"/v2/images/{image_id}/stage", data=body, headers=OCTETS), 415
    )
    assert iapi.get(f"/v2/images/{image_id}").json()["status"] == "queued"
    error_of(
        iapi.put(f"/v2/images/{image_id}/stage", data=random_image(17 * MiB), headers=OCTETS), 413
    )
    wait_for(lambda: not leftovers(importing, image_id), what="no staged data")
    # the same content by web-download fails its task the same way
    error_of(web_import(iapi, image_id, "http://127.0.0.1:1/x"), 400)  # port not allowed
    image_id = new_image(iapi, disk_format="qcow2")
    assert web_import(iapi, image_id, f"{web}/data/{serve(body)}").status_code == 202
    assert_failed(importing, iapi, image_id, "backing file")


def test_web_download(importing, iapi, web):
    data = random_image(2 * MiB + 7)
    image_id = new_image(iapi)
    url = f"{web}/redirect?to={web}/data/{serve(data)}"  # a redirect to an allowed host
    assert web_import(iapi, image_id, url).status_code == 202
    image = settled(iapi, image_id)
    assert image["status"] == "active" and image["size"] == len(data)
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    (task,) = tasks_of(iapi, image_id)
    assert task["status"] == "success" and task["bytes_done"] == len(data)
    error_of(web_import(iapi, image_id, url), 409)  # active


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/image",
        "http://127.0.0.2:{port}/data/x",  # loopback, but not the allowed host
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/x",
    ],
)
def test_redirect_to_a_refused_url(importing, iapi, web, target):
    image_id = new_image(iapi)
    target = target.format(port=urlsplit(web).port)
    assert web_import(iapi, image_id, f"{web}/redirect?to={target}").status_code == 202
    assert_failed(importing, iapi, image_id, "does not pass filtering")


@pytest.mark.parametrize("kind", ["long", "short"])
def test_a_body_lying_about_its_size(importing, iapi, web, kind):
    image_id = new_image(iapi)
    assert web_import(iapi, image_id, f"{web}/{kind}/{serve(random_image(MiB))}").status_code == 202
    assert_failed(importing, iapi, image_id)


def test_size_cap(importing, iapi, web):
    image_id = new_image(iapi)
    assert (
        web_import(iapi, image_id, f"{web}/data/{serve(random_image(17 * MiB))}").status_code == 202
    )
    assert_failed(importing, iapi, image_id, "exceeds")


def test_import_errors(importing, iapi, web):
    image_id = new_image(iapi)
    path = f"/v2/images/{image_id}/import"
    assert "'method'" in error_of(iapi.post(path, json={}), 400)
    assert "'name'" in error_of(iapi.post(path, json={"method": {}}), 400)
    assert "copy-image" in error_of(iapi.post(path, json={"method": {"name": "copy-image"}}), 400)
    assert "boolean" in error_of(
        iapi.post(path, json={"method": {"name": "web-download"}, "all_stores": "yes"}), 400
    )
    error_of(iapi.post(path, json={"method": {"name": "web-download"}}), 400)  # no uri
    other = Api(importing.url, project="someone-else")
    error_of(other.post(path, json={"method": {"name": "glance-direct"}}), 404)
    formatless = iapi.create(name="no-format")["id"]
    assert "container_format" in error_of(web_import(iapi, formatless, f"{web}/data/x"), 409)


def test_lock_and_progress_while_importing(importing, iapi, web):
    data = random_image(3 * MiB)
    image_id = new_image(iapi)
    with Source.release.holding():
        assert web_import(iapi, image_id, f"{web}/slow/{serve(data)}").status_code == 202

        def running():
            tasks = tasks_of(iapi, image_id)
            return tasks and tasks[0]["status"] == "processing" and tasks[0].get("bytes_done")

        wait_for(running, timeout=30, what="progress of the running task")
        shown = iapi.get(f"/v2/images/{image_id}").json()
        assert shown["status"] == "importing"
        assert shown["os_glance_import_task"] == tasks_of(iapi, image_id)[0]["id"]
        assert "Copied" in tasks_of(iapi, image_id)[0]["message"]
        error_of(web_import(iapi, image_id, f"{web}/data/{serve(data)}"), 409)
        error_of(iapi.put(f"/v2/images/{image_id}/stage", data=b"x", headers=OCTETS), 409)
        error_of(iapi.put(f"/v2/images/{image_id}/file", data=b"x", headers=OCTETS), 409)
    assert settled(iapi, image_id)["status"] == "active"


def test_delete_of_a_staged_image_removes_its_staged_data(importing, iapi):
    image_id = new_image(iapi)
    assert (
        iapi.put(f"/v2/images/{image_id}/stage", data=b"z" * 1000, headers=OCTETS).status_code
        == 204
    )
    assert leftovers(importing, image_id)
    assert iapi.delete(f"/v2/images/{image_id}").status_code == 204
    wait_for(lambda: not leftovers(importing, image_id), what="the staged data to go")


def test_replica_killed_mid_import(importing, iapi, web):
    """The replica running an import dies: the import is given up when its lease
    lapses (queued, os_glance_failed_import, task failure) and its data removed."""
    importing.start_service("store")
    wait_for(lambda: store_consumers(importing) == 2, timeout=60, what="two store replicas")
    image_id = new_image(iapi)
    with Source.release.holding():
        assert (
            web_import(iapi, image_id, f"{web}/slow/{serve(random_image(3 * MiB))}").status_code
            == 202
        )
        wait_for(lambda: list(importing.datadir.glob(f"{image_id}.*.part")), what="partial data")
        writer = writer_of(importing, importing.datadir / image_id)
        writer.send_signal(signal.SIGKILL)
    assert_failed(importing, iapi, image_id, "lease")
    importing.extra = [p for p in importing.extra if p.pid != writer.pid]
    if len(store_pids(importing)) < 2:
        importing.start_service("store")
    # the image can be imported again
    data = random_image(MiB)
    assert web_import(iapi, image_id, f"{web}/data/{serve(data)}").status_code == 202
    assert settled(iapi, image_id)["checksum"] == hashlib.md5(data).hexdigest()


def test_image_deleted_mid_import(importing, iapi, web):
    image_id = new_image(iapi)
    with Source.release.holding():
        assert (
            web_import(iapi, image_id, f"{web}/slow/{serve(random_image(2 * MiB))}").status_code
            == 202
        )
        wait_for(lambda: list(importing.datadir.glob(f"{image_id}.*.part")), what="partial data")
        assert iapi.delete(f"/v2/images/{image_id}").status_code == 204
    admin = Api(importing.url, project=iapi.project, roles="admin,member,reader")

    def task_failed():
        listed = admin.get("/v2/tasks?status=failure").json()["tasks"]
        return [
            t
            for t in listed
            if admin.get(f"/v2/tasks/{t['id']}").json().get("image_id") == image_id
        ]

    wait_for(task_failed, timeout=30, what="the task to fail")
    wait_for(lambda: not leftovers(importing, image_id), what="no data left behind")


def test_replica_killed_mid_stage(importing, iapi):
    """The replica receiving a stage dies: the image is queued again and the partial
    staged data removed."""
    if len(store_pids(importing)) < 2:
        importing.start_service("store")
    wait_for(lambda: store_consumers(importing) == 2, timeout=60, what="two store replicas")
    image_id = new_image(iapi)
    staging = importing.workdir / "data" / "staging"
    host, port = importing.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        (
            f"PUT /v2/images/{image_id}/stage HTTP/1.1\r\nHost: x\r\n"
            f"X-Project-Id: {iapi.project}\r\nX-Roles: member\r\n"
            f"Content-Type: application/octet-stream\r\nConnection: close\r\n"
            f"Content-Length: {6 * MiB}\r\n\r\n"
        ).encode()
    )
    sock.sendall(random_image(2 * MiB))
    wait_for(lambda: list(staging.glob(f"{image_id}.*.part")), what="partial staged data")
    writer = writer_of(importing, staging / image_id)
    writer.send_signal(signal.SIGKILL)
    sock.close()
    wait_for(
        lambda: iapi.get(f"/v2/images/{image_id}").json()["status"] == "queued",
        timeout=20,
        what="the image to be queued again",
    )
    wait_for(lambda: not leftovers(importing, image_id), timeout=20, what="no staged data")
    importing.extra = [p for p in importing.extra if p.pid != writer.pid]
    if len(store_pids(importing)) < 2:
        importing.start_service("store")


def test_tasks_api(importing, iapi, web):
    admin = Api(importing.url, project=iapi.project, roles="admin,member,reader")
    body = {
        "type": "import",
        "input": {
            "import_from": f"{web}/data/{serve(b'legacy' * 1000)}",
            "import_from_format": "raw",
            "image_properties": {"name": "legacy", "container_format": "bare"},
        },
    }
    assert "tasks_api_access" in error_of(iapi.post("/v2/tasks", json=body), 403)
    error_of(iapi.get("/v2/tasks"), 403)
    resp = admin.post("/v2/tasks", json=body)
    assert resp.status_code == 201, resp.text
    task = resp.json()
    assert resp.headers["Location"] == f"/v2/tasks/{task['id']}"
    assert (task["type"], task["status"], task["input"]) == ("import", "pending", body["input"])
    wait_for(
        lambda: admin.get(f"/v2/tasks/{task['id']}").json()["status"] == "success",
        timeout=30,
        what="the legacy import",
    )
    done = admin.get(f"/v2/tasks/{task['id']}").json()
    image = admin.get(f"/v2/images/{done['result']['image_id']}").json()
    assert (image["name"], image["status"], image["size"]) == ("legacy", "active", 6000)
    listed = admin.get("/v2/tasks?type=import&limit=1").json()
    assert listed["tasks"][0]["id"] == task["id"] and "input" not in listed["tasks"][0]
    assert listed["schema"] == "/v2/schemas/tasks" and "next" in listed
    error_of(admin.get("/v2/tasks?status=bogus"), 400)
    error_of(admin.get("/v2/tasks?marker=nope"), 400)
    error_of(admin.get(f"/v2/tasks/{uuid.uuid4()}"), 404)
    assert admin.delete(f"/v2/tasks/{task['id']}").status_code == 405
    bad = {**body, "input": {**body["input"], "import_from": "http://169.254.169.254/"}}
    assert "filtering" in error_of(admin.post("/v2/tasks", json=bad), 400)
    schema = admin.get("/v2/schemas/task").json()
    assert schema["name"] == "task" and "bytes_done" in schema["properties"]
    assert admin.get("/v2/schemas/tasks").json()["name"] == "tasks"


# --- the real clients (without Keystone: README's --os-auth-type none / --os-image-url)

BIN = Path(sys.executable).parent


def cli(name: str, *args: str) -> str:
    """Run the ``openstack`` or ``glance`` CLI with standard input closed (both read
    image data from a standard input that is not a terminal)."""
    proc = subprocess.run(
        [str(BIN / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.close(0),
    )
    assert proc.returncode == 0, f"{name} {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture
def clients(importing, tmp_path):
    data = random_image(MiB + 11)
    path = tmp_path / "disk.raw"
    path.write_bytes(data)
    # no identity headers: an admin of the development project (README)
    return Api(importing.url, project="development", roles="admin,member,reader"), path, data


def test_openstack_cli(importing, web, clients):
    dev, path, data = clients
    osc = ("--os-auth-type", "none", "--os-endpoint", importing.url)
    created = json.loads(
        cli(
            "openstack",
            *osc,
            "image",
            "create",
            "--import",
            "--file",
            str(path),
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "osc-import",
            "-f",
            "json",
        )
    )
    assert created["status"] in ("importing", "active")
    assert settled(dev, created["id"])["checksum"] == hashlib.md5(data).hexdigest()
    image_id = new_image(dev)
    # without --disallow-failure the client sends all_stores_must_succeed=false, which
    # Glance (and Tessera) refuse without multiple stores
    uri = f"{web}/data/{serve(data)}"
    cli("openstack", *osc, "image", "import", "--method", "web-download", "--uri", uri,
        "--disallow-failure", image_id)  # fmt: skip
    assert settled(dev, image_id)["os_hash_value"] == hashlib.sha512(data).hexdigest(), tasks_of(
        dev, image_id
    )


def test_glance_cli(importing, web, clients):
    dev, path, data = clients
    glance = ("--os-image-url", importing.url, "--os-auth-token", "x")
    ids = []
    for method in (("--file", str(path)), ("--uri", f"{web}/data/{serve(data)}")):
        out = cli(
            "glance",
            *glance,
            "image-create-via-import",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--name",
            "gc-import",
            "--import-method",
            "glance-direct" if method[0] == "--file" else "web-download",
            *method,
        )
        image_id = next(
            line.split("|")[2].strip() for line in out.splitlines() if line.startswith("| id ")
        )
        assert settled(dev, image_id)["checksum"] == hashlib.md5(data).hexdigest()
        ids.append(image_id)
    listing = cli("glance", *glance, "task-list")
    task_id = next(t["id"] for t in tasks_of(dev, ids[1]))
    assert task_id in listing
    shown = cli("glance", *glance, "task-show", task_id)
    assert "success" in shown and "bytes_done" in shown and ids[1] in shown


def test_openstacksdk_stage_and_import(importing, web, clients):
    import openstack

    dev, _path, data = clients
    conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": importing.url})
    image = conn.image.create_image(name="sdk", disk_format="raw", container_format="bare")
    conn.image.stage_image(image, data=data)
    assert conn.image.get_image(image).status == "uploading"
    conn.image.import_image(image, method="glance-direct")
    assert settled(dev, image.id)["checksum"] == hashlib.md5(data).hexdigest()
    other = conn.image.create_image(name="sdk-web", disk_format="raw", container_format="bare")
    conn.image.import_image(other, method="web-download", uri=f"{web}/data/{serve(data)}")
    assert settled(dev, other.id)["size"] == len(data)
    assert {t.id for t in conn.image.tasks()} >= {t["id"] for t in tasks_of(dev, other.id)}
