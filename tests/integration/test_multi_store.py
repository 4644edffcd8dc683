"""Multiple stores (``[DEFAULT] enabled_backends``) on a real stack, SQLite and MariaDB:
two file stores in one config, the glance CLI's stores-info and stores-delete, uploads
to the store X-Image-Meta-Store names, the ``stores`` attribute, deleting one store's
copy, downloads falling back to another copy, the version list; and a single-store
stack without any of it (/v2/info/stores 404)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Api, random_image
from tests.integration.test_image_data import wait_for
from tests.integration.test_import import (  # noqa: F401 - web: the fixture
    Source,
    allowing,
    serve,
    settled,
    web,
)
from tests.integration.test_store_replicas import store_consumers, writer_of
from tests.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def multi(request, web, tmp_path_factory):  # noqa: F811 - web: the fixture imported
    workdir = tmp_path_factory.mktemp(f"multi-{request.param}")
    stack = Stack(
        workdir,
        mysql=request.param == "mysql",
        sections={
            "DEFAULT": {"enabled_backends": "fast:file, cheap:file, spare:file"},
            "glance_store": {"default_backend": "fast"},
            "fast": {"filesystem_store_datadir": workdir / "fast", "store_description": "SSD"},
            "cheap": {"filesystem_store_datadir": workdir / "cheap"},
            # spare: broken on purpose by some tests (its directory made a file)
            "spare": {"filesystem_store_datadir": workdir / "spare"},
            "store": {"upload_lease_seconds": 3},
            "import_filtering_opts": allowing(web),
        },
    )
    try:
        stack.start()
        stack.database = request.param
        stack.web = web
        stack.dirs = {n: workdir / n for n in ("fast", "cheap", "spare")}
        yield stack
    finally:
        stack.cleanup()


@pytest.fixture
def api(multi):
    return Api(multi.url, project=f"ms-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def admin(multi):
    return Api(multi.url, project="admin-project", roles="admin,member,reader")


def glance(stack, *args: str) -> str:
    """The glance CLI as an admin (development auth: no identity headers)."""
    result = subprocess.run(
        [str(ROOT / ".venv/bin/glance"), "--os-image-url", stack.url, "--os-auth-token", "x"]
        + list(args),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def upload(api, store: str | None = None) -> tuple[str, bytes]:
    image_id = api.create(name="ms", disk_format="raw", container_format="bare")["id"]
    data = random_image(256 * 1024)
    headers = {**OCTETS, **({"X-Image-Meta-Store": store} if store else {})}
    resp = api.put(f"/v2/images/{image_id}/file", data=data, headers=headers)
    assert resp.status_code == 204, resp.text
    return image_id, data


def copy_to(stack, image_id: str, src: str, dst: str) -> None:
    """A second copy, as copy-image would make it: the file, and its location added by
    PATCH as an admin would (the store's metadata naming the store)."""
    shutil.copy(stack.dirs[src] / image_id, stack.dirs[dst] / image_id)


def test_stores_info_and_detail(multi, api, admin):
    stores = api.get("/v2/info/stores").json()["stores"]
    assert stores == [
        {"id": "cheap"},
        {"id": "fast", "description": "SSD", "default": "true"},
        {"id": "spare"},
    ]
    assert api.get("/v2/info/stores/detail").status_code == 403
    detail = {s["id"]: s for s in admin.get("/v2/info/stores/detail").json()["stores"]}
    assert detail["cheap"]["type"] == "file"
    assert detail["cheap"]["properties"]["data_dir"] == str(multi.dirs["cheap"])
    out = glance(multi, "stores-info")
    assert "cheap" in out and "fast" in out


def test_create_names_the_stores_and_versions_list_multi_store(multi, api):
    resp = api.post("/v2/images", json={"name": "h"})
    assert resp.headers["OpenStack-image-store-ids"].split(",") == ["fast", "cheap", "spare"]
    ids = [v["id"] for v in api.get("/versions").json()["versions"]]
    assert "v2.8" in ids and "v2.13" in ids


def test_upload_to_the_store_named_and_the_default(multi, api):
    cheap_id, data = upload(api, "cheap")
    assert (multi.dirs["cheap"] / cheap_id).read_bytes() == data
    assert not (multi.dirs["fast"] / cheap_id).exists()
    assert api.get(f"/v2/images/{cheap_id}").json()["stores"] == "cheap"
    fast_id, _ = upload(api)
    assert api.get(f"/v2/images/{fast_id}").json()["stores"] == "fast"
    assert api.get(f"/v2/images/{cheap_id}/file").content == data


def test_unknown_store_is_400_and_the_image_stays_queued(multi, api):
    image_id = api.create(name="ms", disk_format="raw", container_format="bare")["id"]
    resp = api.put(
        f"/v2/images/{image_id}/file", data=b"x", headers={**OCTETS, "X-Image-Meta-Store": "no"}
    )
    assert resp.status_code == 400
    assert "Unknown scheme 'no' found in URI" in resp.text
    assert api.get(f"/v2/images/{image_id}").json()["status"] == "queued"


def two_copies(multi, admin) -> tuple[str, bytes]:
    """An active image with a copy in fast and in cheap (the second location added as
    the registry records a store's copy)."""
    image_id, data = upload(admin, "fast")
    copy_to(multi, image_id, "fast", "cheap")
    url = (multi.dirs["cheap"] / image_id).resolve().as_uri()
    _add_location(multi, image_id, url, "cheap")
    return image_id, data


def _add_location(stack, image_id: str, url: str, store: str) -> None:
    """Record a location directly in the database (what copy-image will do)."""
    from sqlalchemy import create_engine, text

    from services.common.config import database_url, load_config

    engine = create_engine(database_url(load_config(stack.config_args)))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO image_locations (image_id, value, meta_data, status, "
                "created_at) VALUES (:i, :v, :m, 'active', CURRENT_TIMESTAMP)"
            ),
            {"i": image_id, "v": url, "m": json.dumps({"store": store})},
        )
    engine.dispose()


def test_delete_one_stores_copy_and_fall_back(multi, admin, api):
    image_id, data = two_copies(multi, admin)
    assert admin.get(f"/v2/images/{image_id}").json()["stores"] == "fast,cheap"
    # the first copy missing: the download falls back to the other one
    (multi.dirs["fast"] / image_id).rename(multi.dirs["fast"] / f"{image_id}.away")
    got = admin.get(f"/v2/images/{image_id}/file")
    assert got.status_code == 200
    assert hashlib.md5(got.content).digest() == hashlib.md5(data).digest()
    (multi.dirs["fast"] / f"{image_id}.away").rename(multi.dirs["fast"] / image_id)

    assert api.delete(f"/v2/stores/cheap/{image_id}").status_code == 404  # not visible
    assert admin.delete(f"/v2/stores/nowhere/{image_id}").status_code == 409
    assert admin.delete(f"/v2/stores/cheap/{uuid.uuid4()}").status_code == 404
    glance(multi, "stores-delete", image_id, "--store", "cheap")
    assert admin.get(f"/v2/images/{image_id}").json()["stores"] == "fast"
    for _ in range(100):  # the store service deletes the data on location.removed
        if not (multi.dirs["cheap"] / image_id).exists():
            break
        time.sleep(0.1)
    assert not (multi.dirs["cheap"] / image_id).exists()
    assert (multi.dirs["fast"] / image_id).exists()
    # its last copy: 403, and not in that store any more: 404
    assert admin.delete(f"/v2/stores/fast/{image_id}").status_code == 403
    assert admin.delete(f"/v2/stores/cheap/{image_id}").status_code == 403
    assert admin.get(f"/v2/images/{image_id}/file").content == data


def test_delete_from_store_of_a_queued_image_is_409(multi, admin):
    image_id = admin.create(name="q")["id"]
    assert admin.delete(f"/v2/stores/fast/{image_id}").status_code == 409


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("single-store"))
    try:
        stack.start()
        yield stack
    finally:
        stack.cleanup()


def test_single_store_unchanged(single):
    api = Api(single.url, project="single")
    assert api.get("/v2/info/stores").status_code == 404
    assert api.get("/v2/info/stores/detail").status_code == 404
    resp = api.post(
        "/v2/images", json={"name": "s", "disk_format": "raw", "container_format": "bare"}
    )
    assert "OpenStack-image-store-ids" not in resp.headers
    image_id = resp.json()["id"]
    # X-Image-Meta-Store is ignored with one store, as Glance
    put = api.put(
        f"/v2/images/{image_id}/file", data=b"abc", headers={**OCTETS, "X-Image-Meta-Store": "x"}
    )
    assert put.status_code == 204
    image = api.get(f"/v2/images/{image_id}").json()
    assert "stores" not in image and image["status"] == "active"
    assert api.get(f"/v2/images/{image_id}/file").content == b"abc"
    assert api.delete(f"/v2/stores/file/{image_id}").status_code == 404
    ids = [v["id"] for v in api.get("/versions").json()["versions"]]
    assert "v2.9" in ids and "v2.8" not in ids and "v2.13" not in ids


def test_glance_direct_import_into_the_store_named(multi, api):
    image_id = api.create(name="imp", disk_format="raw", container_format="bare")["id"]
    data = random_image(64 * 1024)
    assert api.put(f"/v2/images/{image_id}/stage", data=data, headers=OCTETS).status_code == 204
    path = f"/v2/images/{image_id}/import"
    method = {"name": "glance-direct"}
    assert api.post(path, json={"method": method, "stores": ["nope"]}).status_code == 400
    both = api.post(
        path, json={"method": method, "stores": ["fast"]}, headers={"X-Image-Meta-Store": "cheap"}
    )
    assert both.status_code == 400
    assert api.post(path, json={"method": method, "stores": ["cheap"]}).status_code == 202
    for _ in range(100):
        image = api.get(f"/v2/images/{image_id}").json()
        if image["status"] == "active":
            break
        time.sleep(0.1)
    assert image["status"] == "active" and image["stores"] == "cheap"
    assert (multi.dirs["cheap"] / image_id).read_bytes() == data


def settle_copy(api, image_id: str) -> dict:
    for _ in range(150):
        image = api.get(f"/v2/images/{image_id}").json()
        if (
            "os_glance_importing_to_stores" not in image
            or not image["os_glance_importing_to_stores"]
        ):
            return image
        time.sleep(0.1)
    raise AssertionError(f"copy of {image_id} still running: {image}")


def test_copy_image(multi, api, admin):
    assert "copy-image" in api.get("/v2/info/import").json()["import-methods"]["value"]
    image_id, data = upload(admin, "fast")
    path = f"/v2/images/{image_id}/import"
    copy = {"method": {"name": "copy-image"}, "stores": ["cheap"]}
    assert api.post(path, json=copy).status_code in (403, 404)  # admin only (copy_image)
    present = {"method": {"name": "copy-image"}, "stores": ["fast"]}
    assert admin.post(path, json=present).status_code == 400  # already there
    glance(multi, "image-import", image_id, "--import-method", "copy-image", "--stores", "cheap")
    image = settle_copy(admin, image_id)
    assert image["status"] == "active"
    assert image["stores"] == "fast,cheap"
    assert not image.get("os_glance_failed_import")
    assert (multi.dirs["cheap"] / image_id).read_bytes() == data
    tasks = admin.get(f"/v2/images/{image_id}/tasks").json()["tasks"]
    assert tasks[0]["status"] == "success"
    # glance image-tasks (the client asks only when 2.12 is listed: with multiple stores)
    assert "| success |" in glance(multi, "image-tasks", image_id)
    # all_stores: the stores not holding it yet (spare)
    all_stores = {"method": {"name": "copy-image"}, "all_stores": True}
    assert admin.post(path, json=all_stores).status_code == 202
    image = settle_copy(admin, image_id)
    assert image["stores"] == "fast,cheap,spare" and not image.get("os_glance_failed_import")
    assert (multi.dirs["spare"] / image_id).read_bytes() == data
    # everywhere already: all_stores has nothing to do
    assert admin.post(path, json=all_stores).status_code == 202
    queued = admin.create(name="q")["id"]
    assert admin.post(f"/v2/images/{queued}/import", json=copy).status_code == 409


def staged_image(api) -> tuple[str, bytes]:
    image_id = api.create(name="imp", disk_format="raw", container_format="bare")["id"]
    data = random_image(64 * 1024)
    assert api.put(f"/v2/images/{image_id}/stage", data=data, headers=OCTETS).status_code == 204
    return image_id, data


def files_of(stack, image_id: str) -> list:
    found = [p for d in stack.dirs.values() if d.is_dir() for p in d.glob(f"{image_id}*")]
    return found + list((stack.workdir / "data" / "staging").glob(f"{image_id}*"))


@pytest.fixture
def broken_spare(multi):
    """The spare store unusable: its directory replaced by a file."""
    spare = multi.dirs["spare"]
    shutil.rmtree(spare)
    spare.write_bytes(b"not a directory")
    try:
        yield
    finally:
        spare.unlink()
        spare.mkdir()


def test_glance_direct_import_to_several_stores(multi, api):
    image_id, data = staged_image(api)
    body = {"method": {"name": "glance-direct"}, "stores": ["fast", "cheap"]}
    assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    image = settled(api, image_id)
    assert image["status"] == "active" and image["stores"] == "fast,cheap"
    assert "os_glance_importing_to_stores" not in image
    assert "os_glance_failed_import" not in image
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    for store in ("fast", "cheap"):
        assert (multi.dirs[store] / image_id).read_bytes() == data
    assert not (multi.dirs["spare"] / image_id).exists()
    assert files_of(multi, image_id) == [multi.dirs[s] / image_id for s in ("fast", "cheap")]


def test_web_download_to_all_stores(multi, api):
    image_id = api.create(name="web", disk_format="raw", container_format="bare")["id"]
    data = random_image(96 * 1024)
    method = {"name": "web-download", "uri": f"{multi.web}/data/{serve(data)}"}
    body = {"method": method, "all_stores": True}
    assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    image = settled(api, image_id)
    assert image["status"] == "active"
    assert sorted(image["stores"].split(",")) == ["cheap", "fast", "spare"]
    for store in ("fast", "cheap", "spare"):
        assert (multi.dirs[store] / image_id).read_bytes() == data


def test_a_store_failing_when_all_need_not_succeed(multi, api, broken_spare):
    image_id, data = staged_image(api)
    body = {
        "method": {"name": "glance-direct"},
        "stores": ["fast", "spare", "cheap"],
        "all_stores_must_succeed": False,
    }
    assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    image = settled(api, image_id)
    assert image["status"] == "active" and image["stores"] == "fast,cheap"
    assert image["os_glance_failed_import"] == "spare"
    assert "os_glance_importing_to_stores" not in image
    assert api.get(f"/v2/images/{image_id}/file").content == data
    (task,) = api.get(f"/v2/images/{image_id}/tasks").json()["tasks"]
    assert task["status"] == "success"


def test_a_store_failing_when_all_must_succeed(multi, api, broken_spare):
    image_id, _ = staged_image(api)
    body = {"method": {"name": "glance-direct"}, "stores": ["fast", "cheap", "spare"]}
    assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    image = settled(api, image_id)
    assert image["status"] == "queued" and not image.get("stores")
    assert image["os_glance_failed_import"] == "spare"
    assert "os_glance_importing_to_stores" not in image and "os_glance_import_task" not in image
    (task,) = api.get(f"/v2/images/{image_id}/tasks").json()["tasks"]
    assert task["status"] == "failure"
    # the copies fast and cheap got were removed (Glance reverts), the staged data too
    wait_for(lambda: not files_of(multi, image_id), what="no copy left behind")


def test_copy_image_failing_in_one_store_keeps_the_image_active(multi, admin, broken_spare):
    image_id, data = upload(admin, "fast")
    body = {"method": {"name": "copy-image"}, "stores": ["cheap", "spare"]}
    assert admin.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    wait_for(
        lambda: admin.get(f"/v2/images/{image_id}/tasks").json()["tasks"][0]["status"] == "failure",
        timeout=30,
        what="the copy to fail",
    )
    image = admin.get(f"/v2/images/{image_id}").json()
    assert image["status"] == "active" and image["stores"] == "fast"
    assert image["os_glance_failed_import"] == "spare"
    assert not (multi.dirs["cheap"] / image_id).exists()
    assert admin.get(f"/v2/images/{image_id}/file").content == data


def test_replica_killed_mid_import_to_several_stores(multi, api):
    """The replica fetching a web-download for two stores dies: the import is given up
    when its lease lapses, nothing is left in any store nor staged, the image is queued
    again (not stuck importing) and can be imported again."""
    multi.start_service("store")
    wait_for(lambda: store_consumers(multi) == 2, timeout=60, what="two store replicas")
    image_id = api.create(name="kill", disk_format="raw", container_format="bare")["id"]
    staging = multi.workdir / "data" / "staging"
    with Source.release.holding():
        method = {"name": "web-download", "uri": f"{multi.web}/slow/{serve(random_image(3 << 20))}"}
        body = {"method": method, "stores": ["fast", "cheap"]}
        assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
        wait_for(lambda: list(staging.glob(f"{image_id}.*.part")), what="partial data")
        writer = writer_of(multi, staging / image_id)
        writer.send_signal(signal.SIGKILL)
    image = settled(api, image_id)
    assert image["status"] == "queued" and not image.get("stores")
    assert image["os_glance_failed_import"] == "fast"  # the store at work, as Glance
    assert "os_glance_importing_to_stores" not in image and "os_glance_import_task" not in image
    (task,) = api.get(f"/v2/images/{image_id}/tasks").json()["tasks"]
    assert task["status"] == "failure"
    wait_for(lambda: not files_of(multi, image_id), what="no data left behind")
    multi.extra = [p for p in multi.extra if p.pid != writer.pid]
    data = random_image(64 * 1024)
    method = {"name": "web-download", "uri": f"{multi.web}/data/{serve(data)}"}
    body = {"method": method, "stores": ["fast", "cheap"]}
    assert api.post(f"/v2/images/{image_id}/import", json=body).status_code == 202
    image = settled(api, image_id)
    assert image["status"] == "active" and image["stores"] == "fast,cheap"
