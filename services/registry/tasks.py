"""Tasks: the records of long work (imports), their status machine
(services/common/states.py: pending → processing → success | failure, compare-and-set)
and the views the Tasks API answers.

Columns: ``input``, ``result`` and ``message`` as Glance keeps them (``input`` and
``result`` JSON text). While a task runs, ``result`` also carries its progress
(``bytes_done``, which Glance does not offer), shown as a field of its own.
``expires_at`` is set when the task ends (``[task] task_time_to_live`` hours later);
after that the task is no longer listed or shown, as in Glance."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from services.common.context import RequestContext
from services.common.errors import BadRequest, Conflict, NotFound
from services.common.states import TASK_STATUSES, check_task_transition
from services.registry.models import Task, utcnow
from services.registry.sorting import sort_order
from services.registry.views import isotime

TASK_TYPES = ("import", "api_image_import", "location_import")
SORT_KEYS = ("created_at", "updated_at", "id", "type", "status", "owner", "expires_at")
PROGRESS_KEY = "bytes_done"


def new_task(
    session: Session, ctx: RequestContext, task_type: str, task_input: dict, image_id: str | None
) -> Task:
    now = utcnow()
    task = Task(
        id=str(uuid.uuid4()),
        type=task_type,
        status="pending",
        owner=ctx.project_id,
        image_id=image_id,
        request_id=ctx.request_id,
        user_id=ctx.user_id,
        input=json.dumps(task_input),
        result=None,
        message="",
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    session.flush()
    return task


def change_status(session: Session, task_id: str, current: str, target: str, **values) -> None:
    """Compare-and-set, as for images: zero rows changed is a Conflict."""
    check_task_transition(current, target)
    result = session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == current)
        .values(status=target, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"Task {task_id} is no longer {current}")


def set_progress(session: Session, task_id: str, bytes_done: int) -> None:
    """Record how far a running task got (Glance's message, and the bytes)."""
    session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == "processing")
        .values(
            result=json.dumps({PROGRESS_KEY: bytes_done}),
            message=f"Copied {bytes_done >> 20} MiB",
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


def end(session: Session, task: Task, ttl_hours: int, result: dict | None = None, message=None):
    """processing (or pending) → success with ``result``, or failure with ``message``."""
    session.refresh(task)  # its status and progress as the database has them now
    done = json.loads(task.result or "{}").get(PROGRESS_KEY)
    stored = dict(result or {})
    if done is not None:
        stored[PROGRESS_KEY] = done
    now = utcnow()
    change_status(
        session,
        task.id,
        task.status,
        "failure" if message is not None else "success",
        result=json.dumps(stored) if stored else None,
        message=message if message is not None else "",
        expires_at=now + timedelta(hours=ttl_hours),
    )


def notification_payload(task: Task) -> dict:
    """Glance's ``format_task_notification`` (no input: it may hold secrets; an unset
    timestamp is the current time, as oslo's isotime(None) gives it)."""
    now = utcnow()
    return {
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "result": None,
        "owner": task.owner,
        "message": None,
        "expires_at": isotime(task.expires_at or now),
        "created_at": isotime(task.created_at or now),
        "updated_at": isotime(task.updated_at or now),
        "deleted": False,
        "deleted_at": None,
    }


# --- reading


def _live():
    """Tasks not yet expired (Glance hides expired ones)."""
    return [Task.deleted.is_(False), or_(Task.expires_at.is_(None), Task.expires_at >= utcnow())]


def task_record(task: Task, full: bool = True) -> dict:
    """The task as the Tasks API shows it (``full``: with input, result and message)."""
    record = {
        "id": task.id,
        "type": task.type,
        "status": task.status,
        "owner": task.owner,
    }
    stored = json.loads(task.result) if task.result else None
    bytes_done = stored.pop(PROGRESS_KEY, None) if isinstance(stored, dict) else None
    if full:
        record["input"] = json.loads(task.input) if task.input else None
        record["result"] = (stored or None) if task.status in ("success", "failure") else None
        record["message"] = task.message or ""
    record["created_at"] = isotime(task.created_at)
    record["updated_at"] = isotime(task.updated_at)
    if task.expires_at is not None:
        record["expires_at"] = isotime(task.expires_at)
    if full:
        for key in ("image_id", "request_id", "user_id"):
            if getattr(task, key):
                record[key] = getattr(task, key)
    if bytes_done is not None:
        record[PROGRESS_KEY] = bytes_done
    record["self"] = f"/v2/tasks/{task.id}"
    record["schema"] = "/v2/schemas/task"
    return record


def image_task_record(task: Task) -> dict:
    """A task as ``GET /v2/images/{id}/tasks`` shows it: Glance answers the database
    rows there, so every column is present (None when unset), deleted ones included."""
    record = task_record(task)
    for key in ("expires_at", "image_id", "request_id", "user_id"):
        record.setdefault(key, None)
    record["deleted"] = False
    record["deleted_at"] = None
    return record


def _visible(ctx: RequestContext):
    """Glance: an admin sees every task, anyone else those of their project."""
    return [] if ctx.is_admin else [Task.owner == ctx.project_id]


def get_task(session: Session, ctx: RequestContext, task_id: str) -> Task:
    task = session.scalar(select(Task).where(Task.id == task_id, *_live(), *_visible(ctx)))
    if task is None:
        raise NotFound(f"Task with identifier {task_id} not found")
    return task


def list_tasks(session: Session, ctx: RequestContext, conf, query: dict) -> tuple[list[Task], bool]:
    """A page of tasks (Glance's filters ``status`` and ``type``, ``sort_key``,
    ``sort_dir``, ``limit``, ``marker``); the page and whether a next one may follow."""
    sort_key, sort_dir = sort_order(query, SORT_KEYS)
    status, task_type = query.get("status"), query.get("type")
    if status and status not in TASK_STATUSES:
        raise BadRequest(f"Invalid status value: {status}")
    if task_type and task_type not in ("import",):
        raise BadRequest(f"Invalid type value: {task_type}")
    limit = min(int(query.get("limit") or conf.limit_param_default), conf.api_limit_max)
    where = [*_live(), *_visible(ctx)]
    if status:
        where.append(Task.status == status)
    if task_type:
        where.append(Task.type == task_type)
    column = getattr(Task, sort_key)
    order = [column.desc(), Task.id.desc()] if sort_dir == "desc" else [column.asc(), Task.id.asc()]
    marker = query.get("marker")
    if marker:
        after = session.scalar(select(Task).where(Task.id == marker, *_visible(ctx)))
        if after is None:
            raise BadRequest(f"Invalid marker. Task {marker} could not be found.")
        value = getattr(after, sort_key)
        later = column < value if sort_dir == "desc" else column > value
        same = Task.id < after.id if sort_dir == "desc" else Task.id > after.id
        where.append(or_(later, (column == value) & same))
    page = list(session.scalars(select(Task).where(*where).order_by(*order).limit(limit)))
    return page, len(page) == limit


def image_tasks(session: Session, image_id: str) -> list[Task]:
    """Every live task of an image (the caller's right to see the image is checked by
    the caller of this function), oldest first."""
    return list(
        session.scalars(
            select(Task)
            .where(Task.image_id == image_id, *_live())
            .order_by(Task.created_at, Task.id)
        )
    )
