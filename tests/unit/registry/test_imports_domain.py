"""Stage and import claims, the import lock and tasks against a real SQLite database
(services/registry/imports.py, tasks.py): what the stack tests cannot reach quickly
(a stale lock, a task's time to live, an expired lease)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from services.common.context import RequestContext
from services.common.errors import BadRequest, Conflict, Forbidden, NotFound
from services.registry import images, imports, tasks, uploads
from services.registry.models import Image, ImageUpload, Task, utcnow
from tests.unit.registry.builders import ADMIN, OWNER

WEB = {"method": {"name": "web-download", "uri": "http://example.com/x"}}
LEASE = 30


@pytest.fixture
def queued(make_image):
    def make(**attributes):
        attributes.setdefault("disk_format", "raw")
        attributes.setdefault("container_format", "bare")
        return make_image(**attributes).id

    return make


def props(session, image_id: str) -> dict:
    session.expire_all()
    return {p.name: p.value for p in session.get(Image, image_id).properties}


def begin(session, image_id: str, request=WEB) -> Task:
    task = imports.begin_import(session, OWNER, image_id, request, "file", LEASE)
    session.commit()
    return task


def test_an_import_takes_the_lock_and_runs_to_success(session, conf, queued):
    image_id = queued()
    task = begin(session, image_id)
    assert session.get(Image, image_id).status == "importing"
    assert props(session, image_id) == {
        "os_glance_import_task": task.id,
        "os_glance_importing_to_stores": "file",
    }
    with pytest.raises(Conflict, match="queued"):
        begin(session, image_id)  # importing now
    claim = imports.start_import(session, conf, task.id, LEASE)
    session.commit()
    assert (claim["method"], claim["uri"], claim["store"]) == (
        "web-download",
        WEB["method"]["uri"],
        "file",
    )
    with pytest.raises(Conflict):
        imports.start_import(session, conf, task.id, LEASE)  # another replica: no
    session.rollback()
    imports.renew_import(session, task.id, 5 << 20, LEASE)
    session.commit()
    session.refresh(task)
    assert tasks.task_record(task)["bytes_done"] == 5 << 20
    assert tasks.task_record(task)["message"] == "Copied 5 MiB"
    result = {
        "size": 6 << 20,
        "checksum": "c",
        "os_hash_algo": "sha512",
        "os_hash_value": "h",
        "location": f"file:///images/{image_id}",
    }
    imports.finish_import(session, conf, task.id, result)
    session.commit()
    session.refresh(task)
    record = tasks.task_record(task)
    assert (record["status"], record["result"], record["bytes_done"]) == (
        "success",
        {"image_id": image_id},
        6 << 20,
    )
    assert record["expires_at"]
    assert session.get(Image, image_id).status == "active"
    assert props(session, image_id) == {}
    assert session.get(ImageUpload, image_id) is None


def test_failure_returns_the_image_to_queued(session, conf, queued):
    image_id = queued()
    task = begin(session, image_id)
    imports.start_import(session, conf, task.id, LEASE)
    assert imports.fail_import(session, conf, task.id, "the source lied") == image_id
    session.commit()
    session.refresh(task)
    assert (task.status, task.message) == ("failure", "the source lied")
    image = session.get(Image, image_id)
    assert (image.status, image.size) == ("queued", None)
    assert props(session, image_id) == {"os_glance_failed_import": "file"}
    assert begin(session, image_id).status == "pending"  # may be imported again
    assert "os_glance_failed_import" not in props(session, image_id)


def test_an_expired_lease_fails_the_task(session, conf, queued):
    image_id = queued()
    task = begin(session, image_id)
    imports.start_import(session, conf, task.id, LEASE)
    session.execute(update(ImageUpload).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    given_up = uploads.expired_uploads(session, conf)
    session.commit()
    assert given_up == [
        {
            "image_id": image_id,
            "upload_id": task.id,
            "store": "file",
            "staged": True,
            "stores": ["file"],
            "leftovers": ["file"],  # never recorded: the store removes a complete copy too
        }
    ]
    session.refresh(task)
    assert task.status == "failure" and "lease" in task.message
    assert session.get(Image, image_id).status == "queued"
    with pytest.raises(Conflict, match="given up"):
        imports.renew_import(session, task.id, 1, LEASE)


def test_an_image_deleted_before_the_claim_fails_the_task(session, conf, queued):
    image_id = queued()
    task = begin(session, image_id)
    images.delete_image(session, OWNER, image_id)
    session.commit()
    assert imports.start_import(session, conf, task.id, LEASE) is None
    session.commit()
    session.refresh(task)
    assert task.status == "failure"


def test_a_stale_lock_is_broken(session, queued):
    image_id = queued()
    task = begin(session, image_id)
    # the task died without anyone noticing, its image was put back by hand
    session.execute(update(Image).where(Image.id == image_id).values(status="queued"))
    session.execute(delete(ImageUpload))
    session.commit()
    with pytest.raises(Conflict, match="still in progress"):
        begin(session, image_id)
    session.rollback()
    stale = utcnow() - timedelta(minutes=121)
    session.execute(update(Task).where(Task.id == task.id).values(updated_at=stale))
    session.commit()
    assert props(session, begin(session, image_id).image_id)["os_glance_import_task"] != task.id


def test_stage_claims(session, conf, queued):
    image_id = queued()
    claim = imports.begin_stage(session, OWNER, conf, image_id, "u1", LEASE)
    session.commit()
    assert claim["max_size"] == conf.image_size_cap
    assert session.get(Image, image_id).status == "uploading"
    with pytest.raises(Conflict, match="queued"):
        imports.begin_stage(session, OWNER, conf, image_id, "u2", LEASE)
    session.rollback()
    imports.finish_stage(session, image_id, "u1", {"size": 42})
    session.commit()
    image = session.get(Image, image_id)
    assert (image.status, image.size) == ("uploading", 42)
    with pytest.raises(Conflict, match="prior operation|staged|given up"):
        imports.finish_stage(session, image_id, "u1", {"size": 42})


def test_a_failed_stage_returns_to_queued(session, conf, queued):
    image_id = queued()
    imports.begin_stage(session, OWNER, conf, image_id, "u1", LEASE)
    session.commit()
    assert uploads.abort_upload(session, image_id, "u1", conf, "broken")
    session.commit()
    assert session.get(Image, image_id).status == "queued"


def test_import_checks(session, conf, queued, make_image):
    formatless = make_image().id
    with pytest.raises(Conflict, match="container_format"):
        begin(session, formatless)
    image_id = queued()
    with pytest.raises(Conflict, match="staged"):
        begin(session, image_id, {"method": {"name": "glance-direct"}})
    stranger = RequestContext(project_id="stranger", roles=("member", "reader"))
    with pytest.raises(NotFound):
        imports.begin_import(session, stranger, image_id, WEB, "file", LEASE)
    reader = RequestContext(project_id=OWNER.project_id, roles=("reader",))
    with pytest.raises(Forbidden):
        imports.begin_import(session, reader, image_id, WEB, "file", LEASE)


def test_finished_tasks_expire(session, conf, queued):
    image_id = queued()
    task = begin(session, image_id)
    assert [t.id for t in tasks.image_tasks(session, image_id)] == [task.id]
    imports.start_import(session, conf, task.id, LEASE)
    imports.fail_import(session, conf, task.id, "no")
    session.execute(update(Task).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert tasks.image_tasks(session, image_id) == []
    admin = RequestContext(project_id="admin", roles=("admin",), is_admin=True)
    with pytest.raises(NotFound):
        tasks.get_task(session, admin, task.id)


def test_task_listing(session, conf, queued):
    made = [begin(session, queued()) for _ in range(3)]
    other = RequestContext(project_id="other", roles=("member", "reader"))
    admin = RequestContext(project_id="admin", roles=("admin",), is_admin=True)
    assert tasks.list_tasks(session, other, conf, {})[0] == []  # only its own
    page, more = tasks.list_tasks(session, admin, conf, {"limit": 2, "sort_dir": "asc"})
    assert [t.id for t in page] == [t.id for t in made[:2]] and more
    rest, _ = tasks.list_tasks(
        session, admin, conf, {"limit": 2, "sort_dir": "asc", "marker": page[-1].id}
    )
    assert [t.id for t in rest] == [made[2].id]
    assert len(tasks.list_tasks(session, OWNER, conf, {"status": "pending"})[0]) == 3
    with pytest.raises(BadRequest):
        tasks.list_tasks(session, admin, conf, {"sort_key": "input"})


def test_an_import_to_several_stores_store_by_store(session, conf, queued):
    """os_glance_importing_to_stores lists the stores still to do, os_glance_failed_import
    the failed ones (all_stores_must_succeed false); every copy becomes a location."""
    image_id = queued()
    request = {**WEB, "all_stores_must_succeed": False}
    task = imports.begin_import(session, OWNER, image_id, request, ["a", "b", "c"], LEASE)
    session.commit()
    assert props(session, image_id)["os_glance_importing_to_stores"] == "a,b,c"
    claim = imports.start_import(session, conf, task.id, LEASE)
    assert (claim["stores"], claim["all_stores_must_succeed"]) == (["a", "b", "c"], False)
    imports.renew_import(session, task.id, 1, LEASE, ["c"], ["b"])
    session.commit()
    assert props(session, image_id)["os_glance_importing_to_stores"] == "c"
    assert props(session, image_id)["os_glance_failed_import"] == "b"
    copies = [{"location": f"file:///{s}/{image_id}", "metadata": {"store": s}} for s in "ac"]
    result = {"size": 1, "checksum": "c", "os_hash_algo": "sha512", "os_hash_value": "h"}
    imports.finish_import(session, conf, task.id, {**result, "locations": copies, "failed": ["b"]})
    session.commit()
    image = session.get(Image, image_id)
    assert image.status == "active" and len(image.locations) == 2
    assert props(session, image_id) == {"os_glance_failed_import": "b"}


def test_the_first_copy_activates_an_import_that_need_not_succeed_everywhere(session, conf, queued):
    """all_stores_must_succeed false: active with the first copy, the lease and the lock
    kept while the next stores are written; an import whose later stores all failed
    ends with no copy to add, one that was never activated cannot."""
    image_id = queued()
    request = {**WEB, "all_stores_must_succeed": False}
    task = imports.begin_import(session, OWNER, image_id, request, ["a", "b", "c"], LEASE)
    session.commit()
    imports.start_import(session, conf, task.id, LEASE)
    result = {"size": 1, "checksum": "c", "os_hash_algo": "sha512", "os_hash_value": "h"}
    first = [{"location": f"file:///a/{image_id}", "metadata": {"store": "a"}}]
    assert imports.activate_import(session, task.id, {**result, "locations": first}) == image_id
    session.commit()
    image = session.get(Image, image_id)
    assert image.status == "active" and len(image.locations) == 1 and image.size == 1
    assert session.get(ImageUpload, image_id).upload_id == task.id
    assert props(session, image_id)["os_glance_import_task"] == task.id
    imports.renew_import(session, task.id, 1, LEASE, ["c"], ["b"])
    imports.finish_import(session, conf, task.id, {**result, "locations": [], "failed": ["b", "c"]})
    session.commit()
    assert len(session.get(Image, image_id).locations) == 1
    assert props(session, image_id) == {"os_glance_failed_import": "b,c"}
    assert session.get(Task, task.id).status == "success"
    other = queued()
    task = imports.begin_import(session, OWNER, other, WEB, "file", LEASE)
    imports.start_import(session, conf, task.id, LEASE)
    with pytest.raises(BadRequest, match="location"):
        imports.finish_import(session, conf, task.id, {**result, "locations": []})


def test_a_failure_names_the_store_at_work(session, conf, queued):
    image_id = queued()
    task = imports.begin_import(session, OWNER, image_id, WEB, ["a", "b", "c"], LEASE)
    session.commit()
    imports.start_import(session, conf, task.id, LEASE)
    session.commit()
    imports.renew_import(session, task.id, 1, LEASE, ["b", "c"], [])
    session.commit()
    assert imports.fail_import(session, conf, task.id, "b broke") == image_id
    session.commit()
    assert props(session, image_id) == {"os_glance_failed_import": "b"}
    assert session.get(Image, image_id).status == "queued"


def test_a_copy_whose_lease_expired_fails_and_names_its_leftovers(session, conf, queued):
    """copy-image (the image stays active): the task fails, the lock goes, and the
    target stores' unrecorded copies are for the store replicas to remove."""
    image_id = queued()
    task = begin(session, image_id)
    imports.start_import(session, conf, task.id, LEASE)
    result = {"size": 1, "checksum": "c", "os_hash_algo": "sha512", "os_hash_value": "h"}
    location = {"location": f"file:///fast/{image_id}", "metadata": {"store": "fast"}}
    imports.finish_import(session, conf, task.id, {**result, "locations": [location]})
    session.commit()
    copy = {"method": {"name": "copy-image"}}
    task = imports.begin_import(session, ADMIN, image_id, copy, ["cheap", "spare"], LEASE)
    imports.start_import(session, conf, task.id, LEASE)
    session.execute(update(ImageUpload).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    (given_up,) = uploads.expired_uploads(session, conf)
    session.commit()
    assert given_up["stores"] == given_up["leftovers"] == ["cheap", "spare"]
    session.refresh(task)
    assert task.status == "failure"
    assert session.get(Image, image_id).status == "active"
    assert props(session, image_id) == {"os_glance_failed_import": "cheap"}
