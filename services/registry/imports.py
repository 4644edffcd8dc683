"""Interoperable import as the registry sees it.

- Staging (glance-direct): ``queued → uploading`` while the bytes go to the staging
  area, under an upload lease (an ``image_uploads`` row, store ``os_glance_staging_store``);
  the image stays ``uploading`` with its ``size`` once staged.
- An import: ``POST /import`` creates an ``api_image_import`` task (``pending``), takes
  the import lock ``os_glance_import_task`` (a property with a unique key, so two imports
  cannot both take it), moves the image to ``importing`` and holds an upload lease whose
  ``upload_id`` is the task id. A store replica claims the task (``pending →
  processing``), renews the lease with its progress, and ends it: ``importing → active``
  with the location and the task ``success``, or back to ``queued`` with
  ``os_glance_failed_import`` and the task ``failure``. A replica that dies stops renewing:
  the registry's lease timer gives the import up the same way (services/registry/uploads.py),
  and the store removes the partial data and the staged file.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import BadRequest, Conflict, Gone, NotFound
from services.registry import access, tasks, unified_limits
from services.registry.images import change_status, get_visible, record_data
from services.registry.models import Image, ImageProperty, ImageUpload, Task, utcnow
from services.registry.quotas import space_left

STAGING_STORE = "os_glance_staging_store"
LOCK = "os_glance_import_task"
IMPORTING = "os_glance_importing_to_stores"
FAILED = "os_glance_failed_import"
# Glance breaks a lock whose task has not moved for this long (twice that when pending)
STALE_LOCK = timedelta(minutes=60)


def _lease(session: Session, image_id: str, upload_id: str, store: str, seconds: int) -> None:
    """The lease (an ``image_uploads`` row) under which a store replica moves an image's
    data, for ``seconds`` unless renewed: an upload's (services/registry/uploads.py), a
    stage's, an import's and a location import's alike."""
    now = utcnow()
    session.add(
        ImageUpload(
            image_id=image_id,
            upload_id=upload_id,
            store=store,
            created_at=now,
            lease_expires_at=now + timedelta(seconds=seconds),
        )
    )


def _claimed(session: Session, image_id: str, upload_id: str) -> ImageUpload:
    upload = session.get(ImageUpload, image_id)
    if upload is None or upload.upload_id != upload_id:
        image = session.get(Image, image_id)
        if image is None or image.deleted:
            raise Gone(f"Image {image_id} was deleted meanwhile.")
        raise Conflict(f"The work on image {image_id} was given up (its lease expired).")
    return upload


def _set_property(image: Image, name: str, value: str | None) -> None:
    """Set (or with None remove) one of the image's ``os_glance_*`` properties."""
    current = {p.name: p for p in image.properties}
    if value is None:
        if name in current:
            image.properties.remove(current[name])
    elif name in current:
        current[name].value = value
    else:
        image.properties.append(ImageProperty(name=name, value=value))


# --- staging (PUT /stage)


def begin_stage(
    session: Session,
    ctx: RequestContext,
    conf,
    image_id: str,
    upload_id: str,
    lease_seconds: int,
    size: int | None = None,
) -> dict:
    """Claim the image for staging; ``size`` is the declared size, when there is one."""
    image = get_visible(session, ctx, image_id)
    access.authorize(session, ctx, "modify_image", image)  # as Glance's stage
    if image.status != "queued":
        raise Conflict(
            f"Image {image_id} is {image.status}: data can only be staged to a queued image."
        )
    unified_limits.enforce_stage(session, conf, ctx.project_id, size)
    uploading = unified_limits.uploading_limits(conf, ctx.project_id)  # before any write
    change_status(session, image_id, "queued", "uploading")
    # the image now counts as uploading; a refusal rolls the claim back (still queued)
    unified_limits.enforce_uploading(session, ctx.project_id, uploading)
    _lease(session, image_id, upload_id, STAGING_STORE, lease_seconds)
    return {
        "image_id": image_id,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "max_size": space_left(session, image.owner, conf),
    }


def finish_stage(session: Session, image_id: str, upload_id: str, result: dict) -> None:
    """The bytes are staged: the image stays ``uploading``, with their size."""
    _claimed(session, image_id, upload_id)
    done = session.execute(
        update(Image)
        .where(Image.id == image_id, Image.status == "uploading")
        .values(size=result["size"], updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        raise Conflict(f"Image {image_id} is no longer uploading")
    session.execute(delete(ImageUpload).where(ImageUpload.image_id == image_id))


# --- imports (POST /import)


def _check_importable(image: Image, method: str) -> None:
    """Glance's checks, in Glance's order and words (all 409)."""
    if image.status == "active" and method != "copy-image":
        raise Conflict("Image with status active cannot be target for import")
    if method in ("web-download", "glance-download") and image.status != "queued":
        raise Conflict(f"Image needs to be in 'queued' state to use '{method}' method")
    if method == "glance-direct" and image.status != "uploading":
        raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
    if not image.container_format:
        raise Conflict("'container_format' needs to be set before import")
    if not image.disk_format:
        raise Conflict("'disk_format' needs to be set before import")


def _check_copyable(session: Session, ctx: RequestContext, image: Image, store: str) -> None:
    """copy-image (multiple stores): policy copy_image, an active image, not already in
    ``store`` (Glance's checks and words)."""
    access.authorize(session, ctx, "copy_image", image)
    if image.status != "active":
        raise Conflict("Only images with status active can be targeted for copying")
    for loc in image.locations:
        if loc.status == "active" and json.loads(loc.meta_data or "{}").get("store") == store:
            raise BadRequest(f"Image is already present at store '{store}'")


def _copy_source(image: Image) -> dict:
    """Where copy-image reads: the image's first active location."""
    loc = next(loc for loc in image.locations if loc.status == "active")
    return {"url": loc.value, "store": json.loads(loc.meta_data or "{}").get("store")}


def _check_lock(session: Session, image: Image) -> None:
    """A lock held by a task still at work (and not stale) refuses the import (409); a
    stale one, or one whose task is gone, is broken, as Glance breaks it."""
    holder = next((p.value for p in image.properties if p.name == LOCK), None)
    if holder is None:
        return
    task = session.get(Task, holder)
    if task is not None and task.status in ("pending", "processing"):
        expiry = STALE_LOCK * (2 if task.status == "pending" else 1)
        if utcnow() - (task.updated_at or task.created_at) < expiry:
            raise Conflict(
                f"New operation on image '{image.id}' is not permitted as prior operation "
                f"is still in progress"
            )
    _set_property(image, LOCK, None)
    session.flush()


def begin_import(
    session: Session,
    ctx: RequestContext,
    image_id: str,
    request: dict,
    store: str | list,
    lease_seconds: int,
    task_type: str = "api_image_import",
    task_input: dict | None = None,
) -> Task:
    """Check, take the lock, create the task and move the image to ``importing``.
    ``store``: the target store, or the list of them (written in turn)."""
    stores = [store] if isinstance(store, str) else list(store)
    image = get_visible(session, ctx, image_id)
    method = request["method"]["name"]
    if method == "copy-image":
        for target in stores:
            _check_copyable(session, ctx, image, target)
    else:
        _check_importable(image, method)
        access.authorize(session, ctx, "modify_image", image)
    _check_lock(session, image)
    task = tasks.new_task(
        session,
        ctx,
        task_type,
        task_input or {"image_id": image_id, "import_req": request, "backend": stores},
        image_id,
    )
    _set_property(image, LOCK, task.id)
    _set_property(image, IMPORTING, ",".join(stores))
    _set_property(image, FAILED, None)
    image.updated_at = utcnow()
    session.flush()  # a concurrent lock taken meanwhile fails here (unique key): 409
    if method != "copy-image":  # a copy leaves the image active
        change_status(session, image_id, image.status, "importing")
    _lease(session, image_id, task.id, stores[0], lease_seconds)
    return task


def _task_of(session: Session, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task with identifier {task_id} not found")
    return task


def start_import(session: Session, conf, task_id: str, lease_seconds: int) -> dict | None:
    """A store replica claims the task (pending → processing): what it needs to run it;
    None when the image went away (or the import was given up) before it started, which
    fails the task."""
    task = _task_of(session, task_id)
    if task.status != "pending":
        raise Conflict(f"Task {task_id} is {task.status}, not pending")
    upload = session.get(ImageUpload, task.image_id)
    if upload is None or upload.upload_id != task_id:
        tasks.end(
            session,
            task,
            conf.task.task_time_to_live,
            message="The image was deleted, or its import given up, before the import started.",
        )
        return None
    tasks.change_status(session, task_id, "pending", "processing")
    upload.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
    task_input = json.loads(task.input or "{}")
    method = (task_input.get("import_req") or {}).get("method") or {}
    targets = {
        "stores": task_input.get("backend") or [upload.store],
        "all_stores_must_succeed": (task_input.get("import_req") or {}).get(
            "all_stores_must_succeed", True
        ),
    }
    if method.get("name") == "copy-image":  # the image stays active with its size
        image = session.get(Image, task.image_id)
        return {
            "task_id": task_id,
            "image_id": image.id,
            "method": "copy-image",
            "uri": None,
            "source": _copy_source(image),
            "size": image.size,
            "store": upload.store,
            "disk_format": image.disk_format,
            "container_format": image.container_format,
            "max_size": image.size,
            "checksum": image.checksum,
            "validation_data": {},
            **targets,
        }
    # the staged size leaves the quota's count while the import runs (the image counts
    # with its stored size once active; a failed import leaves it queued without one)
    session.execute(
        update(Image)
        .where(Image.id == task.image_id)
        .values(size=None)
        .execution_options(synchronize_session=False)
    )
    image = session.get(Image, task.image_id)
    if task.type == "import":  # the legacy Tasks API: a web download
        method = {"name": "web-download", "uri": task_input.get("import_from")}
    if task.type == "location_import":  # the 2.17 location API (location_import.py)
        method = {"name": "location_import", "uri": task_input.get("loc_url")}
    return {
        "task_id": task_id,
        "image_id": image.id,
        "method": method.get("name"),
        "uri": method.get("uri"),
        "store": upload.store,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "max_size": space_left(session, image.owner, conf),
        "validation_data": task_input.get("validation_data") or {},
        **targets,
    }


def renew_import(
    session: Session,
    task_id: str,
    bytes_done: int,
    lease_seconds: int,
    importing: list | None = None,
    failed: list | None = None,
) -> None:
    """Renew the lease with the progress; with several stores, also the stores still to
    do (``os_glance_importing_to_stores``) and those that failed
    (``os_glance_failed_import``), as Glance updates them store by store."""
    task = _task_of(session, task_id)
    upload = _claimed(session, task.image_id, task_id)
    upload.lease_expires_at = utcnow() + timedelta(seconds=lease_seconds)
    tasks.set_progress(session, task_id, bytes_done)
    if importing is not None:
        image = session.get(Image, task.image_id)
        _set_property(image, IMPORTING, ",".join(importing) or None)
        _set_property(image, FAILED, ",".join(failed or []) or None)


def activate_import(session: Session, task_id: str, result: dict) -> str:
    """all_stores_must_succeed false: the first store's copy makes the image active
    (importing → active) while the import goes on to the next stores, as Glance's
    set_active on every store of such an import. The lease, the lock and
    ``os_glance_importing_to_stores`` stay until the import ends. The image id."""
    task = _task_of(session, task_id)
    _claimed(session, task.image_id, task_id)
    record_data(session, task.image_id, "importing", result, result["locations"], lease_done=False)
    return task.image_id


def finish_import(session: Session, conf, task_id: str, result: dict) -> str:
    """importing → active with what the store computed; the task succeeds. The image id."""
    task = _task_of(session, task_id)
    image_id = task.image_id
    _claimed(session, image_id, task_id)
    copies = (
        result["locations"]
        if "locations" in result
        else [{"location": result.get("location"), "metadata": result.get("metadata")}]
    )
    # copy-image leaves the image active, as does an import activated by its first store
    # (whose later stores may all have failed: no copy is left to record)
    current = None if session.get(Image, image_id).status == "active" else "importing"
    if any(copy["location"] is None for copy in copies) or (current and not copies):
        raise BadRequest("An import must end with a location.")
    tasks.set_progress(session, task_id, result["size"] or 0)
    session.refresh(task)
    record_data(session, image_id, current, result, copies)
    image = session.get(Image, image_id)
    session.refresh(image)
    # all_stores_must_succeed false: the stores that failed stay named
    _release(image, task_id, failed_store=",".join(result.get("failed") or []) or None)
    tasks.end(session, task, conf.task.task_time_to_live, result={"image_id": image_id})
    return image_id


def _release(image: Image, task_id: str, failed_store: str | None = None) -> None:
    if next((p.value for p in image.properties if p.name == LOCK), None) == task_id:
        _set_property(image, LOCK, None)
    _set_property(image, IMPORTING, None)
    if failed_store is not None:
        _set_property(image, FAILED, failed_store)
    image.updated_at = utcnow()


def fail_import(session: Session, conf, task_id: str, reason: str) -> str | None:
    """The import failed: the image returns to queued (``os_glance_failed_import`` names
    the store), the task fails with ``reason``. The image id, or None when the import was
    already given up."""
    task = _task_of(session, task_id)
    upload = session.get(ImageUpload, task.image_id)
    if upload is None or upload.upload_id != task_id:
        if task.status in ("pending", "processing"):  # the image was deleted meanwhile
            tasks.end(session, task, conf.task.task_time_to_live, message=reason)
        return None
    session.execute(delete(ImageUpload).where(ImageUpload.image_id == task.image_id))
    give_back(session, conf, session.get(Image, task.image_id), task_id, reason)
    return task.image_id


def give_back(session: Session, conf, image: Image, upload_id: str, reason: str | None) -> None:
    """A stage or an import whose lease row is gone (it failed, or its replica died):
    the image is queued again, an import's task fails. Called with the lease row
    already removed."""
    if image is None or image.deleted:
        return
    if image.status == "uploading":
        change_status(session, image.id, "uploading", "queued", size=None, virtual_size=None)
        return
    task = session.get(Task, upload_id)
    if task is None:
        return
    if image.status == "importing":
        failed = _failed_stores(image, task)
        change_status(session, image.id, "importing", "queued", size=None, virtual_size=None)
        session.refresh(image)
        _release(image, upload_id, failed_store=failed)
    elif image.status == "active" and task.status in ("pending", "processing"):
        _release(image, upload_id, failed_store=_failed_stores(image, task))  # copy-image
    if task.status in ("pending", "processing"):
        tasks.end(
            session,
            task,
            conf.task.task_time_to_live,
            message=reason or "The store replica running the import stopped (its lease expired).",
        )


def _failed_stores(image: Image, task: Task) -> str:
    """The stores a failed import names in ``os_glance_failed_import``: those that had
    failed already and the one at work (the first still to do), as Glance's revert."""
    props = {p.name: p.value for p in image.properties}
    remaining = props.get(IMPORTING)
    if remaining is None:
        remaining = ",".join(json.loads(task.input or "{}").get("backend") or [])
    names = [n for n in (props.get(FAILED) or "").split(",") if n]
    names += remaining.split(",")[:1]
    return ",".join(dict.fromkeys(n for n in names if n))
