"""Interoperable import on the store replicas (a mixin of StoreService).

- ``PUT /v2/images/{id}/stage`` (glance-direct): the gateway asks a replica to open a
  stage (``open_stage``) and streams the body to its data port, exactly as an upload
  (services/store/pipeline.py: size caps, quota, hashes, format checks), but into the
  staging area (``[os_glance_staging_store] filesystem_store_datadir``, a directory every
  replica can read), under an upload lease.
- An import runs when the registry announces it (``import.requested``; one replica of
  the pool takes the event, and RabbitMQ hands it to another if that one dies before it
  claimed the task). The replica claims the task, acknowledges the event and, in a
  thread of its own, reads the source (the staged file, or the web
  through services/store/web_fetch.py) through the same pipeline into the default store,
  renewing the lease with its progress, and ends the task. Whatever happens, the staged
  file is removed after the import; a replica that dies mid-import loses its lease and
  the registry gives the import up, and a surviving replica removes the partial data and
  the staged file (``upload.abandoned``).
"""

from __future__ import annotations

import logging
import uuid
from functools import partial

import eventlet
from nameko.events import SERVICE_POOL, event_handler
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from services.common.config import staging_datadir
from services.common.errors import (
    Conflict,
    Gone,
    ImageTooLarge,
    NotFound,
    failure_message,
)
from services.common.logs import set_request_id
from services.common.rpc import rpc
from services.common.url_filter import UrlFilter
from services.store import conversion
from services.store.backends.file import FileStore
from services.store.dataport import body_readinto, data_http
from services.store.formats import FormatPolicy
from services.store.location_import import run_location_import
from services.store.pipeline import UploadPipeline
from services.store.web_fetch import open_source

log = logging.getLogger(__name__)


class StagingArea(DependencyProvider):
    """The staging area: a file store of its own (one file per staged image)."""

    def setup(self):
        self.store = FileStore(staging_datadir(self.container.config["TESSERA_CONF"]))

    def get_dependency(self, worker_ctx) -> FileStore:
        return self.store


def remove_staged(staging: FileStore, image_id: str) -> None:
    """The staged file of an image and any partial one."""
    for path in staging.datadir.glob(f"{image_id}*"):
        path.unlink(missing_ok=True)


class Background(DependencyProvider):
    """Runs long work in a thread the container manages (killed when the service stops,
    like its workers), so that the event announcing it is acknowledged as soon as the
    work is claimed: RabbitMQ closes a channel whose delivery stays unacknowledged past
    its consumer timeout (30 minutes by default), which a long import would exceed."""

    def get_dependency(self, worker_ctx):
        return self.container.spawn_managed_thread


class ImportWorker:
    """Uses StoreService's ``registry``, ``backends``, ``sessions``, ``data_port``,
    ``buffers`` and ``conf``."""

    staging = StagingArea()
    background = Background()

    def _pipeline(self, readinto, size, claim) -> UploadPipeline:
        """The pipeline for an upload, a stage or an import's fetch, its buffers from
        the replica's budget (``[store] upload_buffer_memory``)."""
        return UploadPipeline(
            readinto,
            size,
            claim["max_size"],
            self.conf.hashing_algorithm,
            claim["disk_format"],
            container_format=claim.get("container_format"),
            format_policy=FormatPolicy.from_config(self.conf),
            buffers=self.buffers,
        )

    # --- staging

    @rpc
    def open_stage(self, image_id: str, size: int | None) -> dict:
        """Claim the image for staging (queued → uploading); the one-time URL that takes
        the bytes."""
        upload_id = str(uuid.uuid4())
        claim = self.registry.begin_stage(image_id, upload_id, size)
        if size is not None and size > claim["max_size"]:
            self.registry.abort_upload(image_id, upload_id)
            raise ImageTooLarge(
                f"Image of {size} bytes exceeds the {claim['max_size']} bytes this project "
                f"may still store (image_size_cap and user_storage_quota)."
            )
        self.sessions.add("stage", {**claim, "size": size}, token=upload_id)
        return {"url": f"{self.data_port}/stages/{upload_id}"}

    def _keep_stage_lease(self, image_id: str, upload_id: str) -> None:
        interval = max(1.0, self.conf.store.upload_lease_seconds / 3)
        while True:
            eventlet.sleep(interval)
            self.registry.renew_upload(image_id, upload_id)

    @data_http("PUT", "/stages/<upload_id>")
    def receive_stage(self, request, upload_id):
        claim = self.sessions.take("stage", upload_id)
        image_id = claim["image_id"]
        lease = eventlet.spawn(self._keep_stage_lease, image_id, upload_id)
        try:
            pipeline = self._pipeline(body_readinto(request.environ), claim["size"], claim)
            stored = self.staging.add(
                image_id,
                pipeline.chunks(),
                claim["size"],
                upload_id,
                confirm=partial(self.registry.renew_upload, image_id, upload_id),
            )
        except BaseException as exc:
            lease.kill()
            log.info("staging of %s failed: %s", image_id, exc)
            self.registry.abort_upload(image_id, upload_id)  # no image.upload: not an upload
            raise
        lease.kill()
        log.info("staged image %s: %d bytes", image_id, pipeline.size)
        try:
            self.registry.finish_stage(image_id, upload_id, {"size": pipeline.size})
        except (Gone, Conflict):
            self.staging.discard(image_id, upload_id, stored)
            raise
        return Response(status=204)

    # --- imports

    @event_handler("registry", "import.requested", handler_type=SERVICE_POOL)
    def run_import(self, payload: dict) -> None:
        task_id, image_id = payload["task_id"], payload["image_id"]
        try:
            claim = self.registry.start_import(task_id)
        except (Conflict, Gone, NotFound) as exc:
            claim, why = None, exc  # another replica has it (RabbitMQ redelivered)
        else:
            why = "the image went away first"
        if claim is None:
            log.info("import task %s of image %s not run: %s", task_id, image_id, why)
            return
        log.info("import task %s: %s of image %s", task_id, claim["method"], image_id)
        request_ids = (self.context.request_id, self.context.global_request_id)

        def run() -> None:
            set_request_id(*request_ids)  # its log lines carry the request's ids
            try:
                self._run_import(claim)
            finally:
                if self._staging_still_ours(image_id, task_id):
                    remove_staged(self.staging, image_id)

        self.background(run, identifier=f"import task {task_id}")

    def _staging_still_ours(self, image_id: str, task_id: str) -> bool:
        """Whether the image's staging area is still this import's to empty: an import
        given up while it ran (its lease lapsed) ends after the image went back to
        queued, and a new stage may have put its data there since."""
        try:
            state = self.registry.sweep_states([image_id]).get(image_id)
        except Exception as exc:  # noqa: BLE001 - as before: the import's data goes
            log.warning("import task %s: removing the staged data unchecked: %s", task_id, exc)
            return True
        if state is None:
            return True
        return state["status"] != "uploading" and state["upload_id"] in (None, task_id)

    def _keep_import_lease(self, task_id: str, progress: list) -> None:
        interval = max(1.0, self.conf.store.upload_lease_seconds / 3)
        while True:
            eventlet.sleep(interval)
            pipeline = progress[0] if progress else None
            self.registry.renew_import(task_id, pipeline.size if pipeline else 0)

    def _open(self, claim: dict):
        """(size, readinto, close) of the import's source."""
        if claim["method"] == "copy-image":  # the image's data in another store
            return self._open_copy_source(claim)
        if (
            conversion.enabled(self.conf)
            and not claim.get("staged_path")
            and claim["disk_format"] != self._output_format()
        ):
            return self._open_converted(claim)
        if claim["method"] == "glance-direct":
            path = claim.get("staged_path") or self.staging.datadir / claim["image_id"]
            try:
                handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
            except OSError:
                raise NotFound(f"No data is staged for image {claim['image_id']}.") from None
            return path.stat().st_size, handle.readinto, handle.close
        source = open_source(claim["uri"], UrlFilter.from_config(self.conf))
        return source.size, source.readinto, source.close

    def _open_copy_source(self, claim: dict):
        """copy-image: the data of the image's existing location, read as a stream."""
        source = claim["source"]
        chunks = self.backends.for_location(source["url"], source["store"]).get(source["url"])
        pending = bytearray()

        def readinto(buffer) -> int:
            while not pending:
                chunk = next(chunks, None)
                if chunk is None:
                    return 0
                pending.extend(chunk)
            count = min(len(buffer), len(pending))
            buffer[:count] = pending[:count]
            del pending[:count]
            return count

        return claim["size"], readinto, getattr(chunks, "close", lambda: None)

    def _output_format(self) -> str:
        return self.conf.image_conversion.output_format

    def _open_converted(self, claim: dict):
        """image_conversion: the staged data (a web download is staged first), checked
        and converted (services/store/conversion.py); the claim's disk_format becomes
        the output format."""
        path = self.staging.datadir / claim["image_id"]
        if claim["method"] != "glance-direct":
            self._stage_download(claim)
        elif not path.exists():
            raise NotFound(f"No data is staged for image {claim['image_id']}.")
        converted = conversion.convert(
            path, claim["disk_format"], self._output_format(), FormatPolicy.from_config(self.conf)
        )
        claim["disk_format"] = self._output_format()
        claim["staged_path"] = converted  # the next stores read the converted data
        handle = open(converted, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
        return converted.stat().st_size, handle.readinto, handle.close

    def _stage_download(self, claim: dict) -> None:
        """web-download: fetch the data once into the staging area (through the
        pipeline's checks); the import then reads the staged file, for every store."""
        source = open_source(claim["uri"], UrlFilter.from_config(self.conf))
        try:
            pipeline = self._pipeline(source.readinto, source.size, claim)
            self.staging.add(
                claim["image_id"],
                pipeline.chunks(),
                source.size,
                claim["task_id"],
                confirm=lambda: self.registry.renew_import(claim["task_id"], pipeline.size),
            )
        finally:
            source.close()
        claim["method"] = "glance-direct"

    def _write_to(self, claim: dict, store_id: str, progress: list):
        """One store's copy: (backend, stored, pipeline result); raises when it fails."""
        backend = self.backends.by_name.get(store_id) or self.backends.default
        size, readinto, close = self._open(claim)
        try:
            pipeline = self._pipeline(readinto, size, claim)
            progress[:] = [pipeline]
            stored = backend.add(
                claim["image_id"],
                pipeline.chunks(),
                size,
                claim["task_id"],
                confirm=lambda: self.registry.renew_import(claim["task_id"], pipeline.size),
            )
        finally:
            close()
        copied = pipeline.result()
        if claim["method"] == "copy-image" and copied["checksum"] != claim["checksum"]:
            backend.discard(claim["image_id"], claim["task_id"], stored)
            raise Conflict("The copied data does not match the checksum.")
        return backend, stored, copied

    def _run_import(self, claim: dict) -> None:
        """Write the data to each target store in turn (Glance's _ImportToStore per
        store): a failure fails the import and removes the copies already written when
        ``all_stores_must_succeed``, else it is recorded and the next store goes on; in
        that case the first copy written makes the image active at once (as Glance)."""
        task_id, image_id = claim["task_id"], claim["image_id"]
        progress: list = []
        lease = eventlet.spawn(self._keep_import_lease, task_id, progress)
        if claim["method"] == "location_import":  # the 2.17 location API
            try:
                run_location_import(self, claim, progress)
            finally:
                lease.kill()
            return
        stores = claim.get("stores") or [claim["store"]]
        must_succeed = claim.get("all_stores_must_succeed", True)
        written, failed, reason, copied = [], [], None, None
        recorded = 0  # of ``written``: copies already the image's (activated early)
        try:
            if len(stores) > 1 and claim["method"] == "web-download":
                self._stage_download(claim)  # fetched once, written to each store
            for index, store_id in enumerate(stores):
                try:
                    backend, stored, copied = self._write_to(claim, store_id, progress)
                except Exception as exc:  # noqa: BLE001 - every failure fails the store
                    log.info("import task %s: store %s failed: %s", task_id, store_id, exc)
                    reason = failure_message(exc)
                    if must_succeed:
                        break
                    failed.append(store_id)
                else:
                    written.append((backend, stored, store_id))
                    reason = None
                    if not (
                        must_succeed or recorded or claim["method"] == "copy-image"
                    ) and index + 1 < len(stores):
                        self.registry.activate_import(
                            task_id, self._import_result(claim, copied, written, failed)
                        )
                        recorded = len(written)
                if index + 1 < len(stores):
                    self.registry.renew_import(
                        task_id, copied["size"] if copied else 0, stores[index + 1 :], failed
                    )
        except Exception as exc:  # noqa: BLE001 - the download to stage failed
            reason = failure_message(exc)
        finally:
            lease.kill()
        if reason is not None and (must_succeed or not written):
            log.info("import task %s of image %s failed: %s", task_id, image_id, reason)
            self._remove_copies(claim, written)  # as Glance reverts: no partial import
            self.registry.fail_import(task_id, reason)
            return
        log.info("imported image %s to %s", image_id, ", ".join(s for _, _, s in written))
        try:
            self.registry.finish_import(
                task_id, self._import_result(claim, copied, written[recorded:], failed)
            )
        except (Gone, Conflict) as exc:
            log.info("import task %s of image %s ended meanwhile: %s", task_id, image_id, exc)
            self._remove_copies(claim, written[recorded:])
            self.registry.fail_import(task_id, str(exc))  # ends the task if still running

    @staticmethod
    def _import_result(claim: dict, copied: dict, written: list, failed: list) -> dict:
        """What the registry records of an import: the pipeline's size and hashes, one
        location per copy in ``written``, the stores that failed."""
        return {
            **copied,
            "locations": [
                {"location": stored.location, "metadata": {**stored.metadata, "store": store_id}}
                for _, stored, store_id in written
            ],
            "failed": failed,
            "disk_format": claim["disk_format"],  # image_conversion may have changed it
        }

    @staticmethod
    def _remove_copies(claim: dict, written: list) -> None:
        """The copies ``written`` by the import, each unless a later write replaced it."""
        for backend, stored, _ in written:
            backend.discard(claim["image_id"], claim["task_id"], stored)

    # --- clean-up

    @event_handler("registry", "upload.abandoned", handler_type=SERVICE_POOL)
    def delete_abandoned_staging(self, payload: dict) -> None:
        """A stage or import whose replica died: its staged data goes too."""
        if payload.get("staged"):
            remove_staged(self.staging, payload["image_id"])

    @event_handler("registry", "image.deleted", handler_type=SERVICE_POOL)
    def delete_staged_data(self, payload: dict) -> None:
        remove_staged(self.staging, payload["image_id"])
