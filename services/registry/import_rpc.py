"""The registry's RPC entrypoints for staging, imports and tasks: thin, as the rest of
RegistryService (a mixin of it, so services/registry/service.py stays small); the logic
lives in imports.py and tasks.py."""

from __future__ import annotations

from services.common.contracts import NewImage
from services.common.errors import BadRequest
from services.common.image_schema import image_validator
from services.common.rpc import rpc
from services.common.url_filter import UrlFilter
from services.registry import images, import_plugins, imports, tasks, unified_limits
from services.registry.models import Task
from services.registry.views import orm_record


class ImportRpc:
    """Uses RegistryService's ``db``, ``context``, ``conf``, ``dispatch``, ``_snapshot``
    and ``_notify``."""

    def _lease_seconds(self) -> int:
        return self.conf.store.upload_lease_seconds

    def _image_updated(self, session, image_id: str) -> dict | None:
        return self._snapshot(session, image_id, "image.update")

    def _after_update(self, image_id: str, record: dict | None) -> None:
        self.dispatch("image.updated", {"image_id": image_id})
        self._notify(record, "image.update")

    def _announce_import(self, task_id: str, image_id: str, image_record: dict | None) -> None:
        """Once the transaction that created an import's task (``begin_import``, or the
        location API's ``add_location``) is committed: the image's update, Glance's
        ``task.create``, and ``import.requested`` for the store replica that runs it."""
        self._after_update(image_id, image_record)
        self._task_notice(task_id, "task.create")
        self.dispatch("import.requested", {"task_id": task_id, "image_id": image_id})

    def _task_notice(self, task_id: str, *events: str) -> None:
        """Glance's ``task.*`` notifications, with the task as it is now (read only
        when one of ``events`` is to be sent)."""
        events = tuple(e for e in events if self.notifier.enabled(e))
        if not events:
            return
        with self.db.begin() as session:
            task = session.get(Task, task_id)
            payload = tasks.notification_payload(task) if task is not None else None
        for event in events:
            if payload is not None:
                self.notifier.info(event, payload)

    # --- staging: called by the store replica that receives the bytes

    @rpc
    def begin_stage(self, image_id: str, upload_id: str, size: int | None = None) -> dict:
        with self.db.begin() as session:
            claim = imports.begin_stage(
                session, self.context, self.conf, image_id, upload_id, self._lease_seconds(), size
            )
            record = self._image_updated(session, image_id)
        self._after_update(image_id, record)
        return claim

    @rpc
    def finish_stage(self, image_id: str, upload_id: str, result: dict) -> None:
        with self.db.begin() as session:
            imports.finish_stage(session, image_id, upload_id, result)
            record = self._image_updated(session, image_id)
        self._after_update(image_id, record)

    # --- imports

    @rpc
    def begin_import(self, image_id: str, request: dict, store: str | list) -> dict:
        """The gateway's ``POST /import``: the task, created and announced to the store
        replicas (one of them runs it)."""
        with self.db.begin() as session:
            # as Glance: an import may not start while the project is over image_size_total
            unified_limits.enforce_upload(session, self.conf, self.context.project_id, None)
            image = images.get_visible(session, self.context, image_id)
            if request["method"]["name"] != "copy-image":  # as Glance: no plugins on a copy
                import_plugins.inject_image_metadata(self.conf, self.context, image)
            task = imports.begin_import(
                session, self.context, image_id, request, store, self._lease_seconds()
            )
            record = tasks.task_record(task)
            image_record = self._image_updated(session, image_id)
        self._announce_import(task.id, image_id, image_record)
        return record

    @rpc
    def start_import(self, task_id: str) -> dict | None:
        with self.db.begin() as session:
            claim = imports.start_import(session, self.conf, task_id, self._lease_seconds())
            record = claim and self._snapshot(session, claim["image_id"], "image.prepare")
        if claim is None:
            self._task_notice(task_id, "task.failure")
        else:
            self._task_notice(task_id, "task.run", "task.processing")
            self._notify(record, "image.prepare")  # as Glance's set_data in the import
        return claim

    @rpc
    def renew_import(
        self,
        task_id: str,
        bytes_done: int,
        importing: list | None = None,
        failed: list | None = None,
    ) -> None:
        with self.db.begin() as session:
            imports.renew_import(
                session, task_id, bytes_done, self._lease_seconds(), importing, failed
            )

    @rpc
    def activate_import(self, task_id: str, result: dict) -> None:
        with self.db.begin() as session:
            image_id = imports.activate_import(session, task_id, result)
            record = self._snapshot(session, image_id, "image.upload", "image.activate")
        self.dispatch("image.activated", {"image_id": image_id})
        self._notify(record, "image.upload", "image.activate")

    @rpc
    def finish_import(self, task_id: str, result: dict) -> None:
        with self.db.begin() as session:
            image_id = imports.finish_import(session, self.conf, task_id, result)
            record = self._snapshot(
                session, image_id, "image.upload", "image.activate", "image.update"
            )
        self.dispatch("image.activated", {"image_id": image_id})
        self._notify(record, "image.upload", "image.activate", "image.update")
        self._task_notice(task_id, "task.success")

    @rpc
    def fail_import(self, task_id: str, reason: str) -> None:
        with self.db.begin() as session:
            image_id = imports.fail_import(session, self.conf, task_id, reason)
            record = self._image_updated(session, image_id) if image_id else None
        if image_id:
            self._after_update(image_id, record)
        self._task_notice(task_id, "task.failure")

    # --- the Tasks API

    @rpc
    def create_task(self, body: dict, store: str) -> dict:
        """The legacy ``POST /v2/tasks`` (type ``import``): a new image from
        ``image_properties``, filled by a web download of ``import_from``."""
        self._tasks_api("add_task")
        for key in ("type", "input"):
            if key not in body:
                raise BadRequest(f"Task '{key}' is required")
        if body["type"] != "import":
            raise BadRequest(f"Task type {body['type']!r} cannot be created (only 'import').")
        task_input = body["input"]
        if not isinstance(task_input, dict):
            raise BadRequest("Task 'input' must be an object")
        try:
            UrlFilter.from_config(self.conf).check(task_input.get("import_from"))
        except BadRequest:
            raise BadRequest(
                f"URI for legacy import task does not pass filtering: "
                f"{task_input.get('import_from')}"
            ) from None
        properties = dict(task_input.get("image_properties") or {})
        properties.setdefault("disk_format", task_input.get("import_from_format"))
        properties.setdefault("container_format", "bare")
        new_image = NewImage.from_body(properties, image_validator(self.conf))
        request = {"method": {"name": "web-download", "uri": task_input["import_from"]}}
        with self.db.begin() as session:
            image = images.create_image(session, self.context, self.conf, new_image)
            image_id = orm_record(image)["id"]
            task = imports.begin_import(
                session,
                self.context,
                image_id,
                request,
                store,
                self._lease_seconds(),
                task_type="import",
                task_input=task_input,
            )
            record = tasks.task_record(task)
        self.dispatch("image.created", {"image_id": image_id})
        self._task_notice(task.id, "task.create")
        self.dispatch("import.requested", {"task_id": task.id, "image_id": image_id})
        return record

    def _tasks_api(self, action: str) -> None:
        """Glance: the Tasks API is for admins (``tasks_api_access``), then ``action``."""
        target = {"project_id": self.context.project_id}
        self.context.can("tasks_api_access", target)
        self.context.can(action, target)

    @rpc
    def get_task(self, task_id: str) -> dict:
        self._tasks_api("get_task")
        with self.db.begin() as session:
            return tasks.task_record(tasks.get_task(session, self.context, task_id))

    @rpc
    def list_tasks(self, query: dict) -> dict:
        self._tasks_api("get_tasks")
        with self.db.begin() as session:
            page, more = tasks.list_tasks(session, self.context, self.conf, query)
            return {"tasks": [tasks.task_record(t, full=False) for t in page], "more": more}

    @rpc
    def image_tasks(self, image_id: str) -> list:
        """``GET /v2/images/{id}/tasks``: 404 unless the caller may see the image."""
        with self.db.begin() as session:
            images.get_visible(session, self.context, image_id)
            return [tasks.image_task_record(t) for t in tasks.image_tasks(session, image_id)]
