"""The store service: the only holder of store credentials, run as N replicas.

Control over RPC (open an upload or a download on whichever replica takes the message),
bytes over the replica's own data port (services/store/dataport.py)."""

from __future__ import annotations

import logging
import os
import time
import uuid
from functools import partial
from urllib.parse import urlparse

from nameko.events import SERVICE_POOL, event_handler
from nameko.rpc import RpcProxy
from werkzeug.wrappers import Response

from services.common.errors import (
    BadRequest,
    Conflict,
    DataNotFound,
    Gone,
    ImageTooLarge,
    StorageFull,
    TesseraError,
)
from services.common.logs import current_log_context, transfer_summary
from services.common.notifications import Notifications
from services.common.rpc import Context, Settings, rpc
from services.common.url_filter import UrlFilter
from services.store import scrubber, sweep
from services.store.buffers import UploadBuffers
from services.store.dataport import body_readinto, data_http, file_body
from services.store.dependencies import DataPortUrl, StoreBackends, TransferSessions
from services.store.handoff import HandoffAddress, handoff
from services.store.imports import ImportWorker
from services.store.leases import UploadLeaseKeeper
from services.store.scrubber import scrub_timer
from services.store.sweep import sweep_timer

log = logging.getLogger(__name__)


def upload_failure(image_id: str, exc: BaseException) -> str:
    """Why an upload failed, in the words of Glance's ``image.upload`` ERROR notification."""
    if isinstance(exc, StorageFull):
        return f"Image storage media is full: {exc}"
    if isinstance(exc, BadRequest):
        return f"Cannot save data for image {image_id}: {exc}"
    return f"Failed to upload image data for image {image_id}: {exc or type(exc).__name__}"


class SendNotice:
    """One download's bytes, counted as they are sent. Once its body ends: a log line
    with the bytes, duration and rate, and Glance's ``image.send`` (when ``payload``, i.e.
    when enabled): INFO with the bytes sent, ERROR when fewer than ``length`` reached the
    client."""

    def __init__(self, notifier, payload: dict | None, length: int, image_id: str | None):
        self.notifier = notifier
        self.payload = payload
        self.length = length
        self.image_id = image_id
        self.sent = 0
        self.started = time.monotonic()
        self.log_context = current_log_context()  # the body is sent after the worker

    def add(self, count: int) -> None:
        self.sent += count

    def wrap(self, body):
        try:
            for chunk in body:
                self.sent += len(chunk)
                yield chunk
        finally:
            self.finish()

    def finish(self, sent: int = 0, handed: bool = False) -> None:
        """The download ended, with ``sent`` more bytes sent (``handed``: by a gateway
        the file was handed to, which the log line says)."""
        self.sent += sent
        summary = transfer_summary(self.sent, time.monotonic() - self.started)
        summary += " (handed to the gateway)" if handed else ""
        extra = {"context": self.log_context}
        if self.sent == self.length:
            log.info("sent image %s: %s", self.image_id, summary, extra=extra)
        else:
            log.warning("sent image %s: %s of %d", self.image_id, summary, self.length, extra=extra)
        if self.payload is not None:
            self._notify({**self.payload, "bytes_sent": self.sent})

    def _notify(self, payload: dict) -> None:
        if self.sent == self.length:
            self.notifier.info("image.send", payload)
        else:
            self.notifier.error("image.send", payload)


class StoreService(ImportWorker):
    name = "store"

    context = Context()
    conf = Settings()
    backends = StoreBackends()
    sessions = TransferSessions()
    data_port = DataPortUrl()
    handoff_address = HandoffAddress()
    leases = UploadLeaseKeeper()
    buffers = UploadBuffers()
    notifier = Notifications()
    registry = RpcProxy("registry")

    @rpc
    def health(self) -> dict:
        return {"service": self.name, "status": "ok"}

    # --- uploads

    @rpc
    def open_upload(self, image_id: str, size: int | None, store: str | None = None) -> dict:
        """Claim the image for an upload (queued → saving) into ``store`` (a store id of
        enabled_backends; None: the default) and answer the one-time URL on this
        replica's data port that takes the bytes."""
        upload_id = str(uuid.uuid4())
        store = store or self.backends.default_name
        self.backends.named(store)  # StoreUnavailable/BadRequest before the image is claimed
        claim = self.registry.begin_upload(image_id, upload_id, store, size)
        if size is not None and size > claim["max_size"]:
            # the declared size is over what the project may still store: refused before
            # the gateway sends a byte (the image is queued again)
            self.registry.abort_upload(image_id, upload_id)
            raise ImageTooLarge(
                f"Image of {size} bytes exceeds the {claim['max_size']} bytes this project "
                f"may still store (image_size_cap and user_storage_quota)."
            )
        self.sessions.add("upload", {**claim, "size": size, "store": store}, token=upload_id)
        return {"url": f"{self.data_port}/uploads/{upload_id}"}

    @data_http("PUT", "/uploads/<upload_id>")
    def receive_upload(self, request, upload_id):
        started = time.monotonic()
        claim = self.sessions.take("upload", upload_id)
        image_id = claim["image_id"]
        backend = self.backends.named(claim["store"])
        # the lease is held until the registry has recorded the upload
        with self.leases.holding(image_id, upload_id, self.registry):
            try:
                pipeline = self._pipeline(body_readinto(request.environ), claim["size"], claim)
                stored = backend.add(
                    image_id,
                    pipeline.chunks(),
                    claim["size"],
                    upload_id,
                    confirm=partial(self.registry.renew_upload, image_id, upload_id),
                )
            except BaseException as exc:
                self.registry.abort_upload(image_id, upload_id, upload_failure(image_id, exc))
                raise
            log.info(
                "received image %s: %s",
                image_id,
                transfer_summary(pipeline.size, time.monotonic() - started),
            )
            result = {
                **pipeline.result(),
                "location": stored.location,
                "metadata": {**stored.metadata, "store": claim["store"]},
            }
            try:
                self.registry.finish_upload(image_id, upload_id, result)
            except (Gone, Conflict):
                # the image went away or the upload was given up meanwhile: its data goes,
                # unless a later upload's has taken its place
                backend.discard(image_id, upload_id, stored)
                raise
        return Response(status=204)

    # --- locations added through the API

    @rpc
    def location_size(self, url: str) -> int:
        """The size of the data at an external location a user adds (only http(s):
        a user never points an image at the store's own files)."""
        if urlparse(url).scheme not in ("http", "https"):
            raise BadRequest(f"Only http and https locations can be added: {url}")
        UrlFilter.from_config(self.conf).resolve(url)  # where the name points now
        return self.backends.for_location(url).size(url)

    # --- downloads

    @rpc
    def open_download(
        self,
        location: str,
        offset: int = 0,
        length: int | None = None,
        image: dict | None = None,
        store: str | None = None,
        verify: bool = False,
    ) -> dict:
        """``image``: ``{"image_id", "owner_id"}`` of the image downloaded, for Glance's
        ``image.send`` notification once the bytes are sent. ``store``: the store id of
        the location's metadata. ``verify``: check now that the data is there
        (DataNotFound otherwise), for a caller that can fall back to another copy."""
        backend = self.backends.for_location(location, store)  # fails now if none reads it
        if verify:
            backend.size(location)
        send = None
        if image is not None and self.notifier.enabled("image.send"):
            send = {
                "bytes_sent": 0,
                "image_id": image["image_id"],
                "owner_id": image["owner_id"],
                "receiver_tenant_id": self.context.project_id,
                "receiver_user_id": self.context.user_id,
            }
        token = self.sessions.add(
            "download",
            {
                "location": location,
                "store": store,
                "offset": offset,
                "length": length,
                "send": send,
                "image_id": image and image["image_id"],
            },
        )
        answer = {"url": f"{self.data_port}/downloads/{token}"}
        if backend.local_files and self.handoff_address:  # services/common/handoff.py
            answer.update(handoff=self.handoff_address, token=token)
        return answer

    def _download(self, token: str):
        """The download session ``token``: (backend, location, offset, length, notice)."""
        session = self.sessions.take("download", token)
        location, offset = session["location"], session["offset"]
        backend = self.backends.for_location(location, session.get("store"))
        length = session["length"]
        if length is None:
            length = backend.size(location) - offset
        notice = SendNotice(self.notifier, session.get("send"), length, session.get("image_id"))
        return backend, location, offset, length, notice

    @handoff
    def hand_download(self, token: str):
        """A gateway on this host asks for the file of the download ``token``: the open
        file, and what to call with the bytes sent once it was sent."""
        backend, location, _, _, notice = self._download(token)
        if not backend.local_files:
            raise BadRequest("This download's data is not in a file store.")
        try:
            fd = os.open(backend.local_path(location), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise DataNotFound(f"The image data at {location} is missing.") from None
        return fd, partial(notice.finish, handed=True)

    @data_http("GET", "/downloads/<token>")
    def send_download(self, request, token):
        backend, location, offset, length, notice = self._download(token)
        if backend.local_files and length > 0:
            body = file_body(
                request.environ,
                backend.local_path(location),
                offset,
                length,
                on_sent=notice.add,
            )
        else:
            body = backend.get(location, offset, length)
        body = notice.wrap(body)
        return Response(
            body,
            status=200,
            direct_passthrough=True,
            headers={"Content-Length": str(length), "Content-Type": "application/octet-stream"},
        )

    # --- data clean-up, once per event across the replicas

    @event_handler("registry", "image.deleted", handler_type=SERVICE_POOL)
    def delete_data(self, payload: dict) -> None:
        self._delete_locations(payload)
        if payload.get("status") == "deleted":
            for file_store in self.backends.file_stores():
                # data an upload wrote whose completion was never recorded (not a location)
                file_store.delete_leftover(payload["image_id"])

    @event_handler("registry", "location.removed", handler_type=SERVICE_POOL)
    def delete_removed_location(self, payload: dict) -> None:
        self._delete_locations(payload)

    def _delete_locations(self, payload: dict) -> None:
        for location in payload.get("locations") or ():
            try:
                backend = self.backends.for_location(location)
                if backend.writable:
                    backend.delete(location)
            except TesseraError as exc:
                log.warning(
                    "could not delete %s of image %s: %s", location, payload["image_id"], exc
                )

    # --- delayed delete: the scrubber, on every replica, each image scrubbed by one

    @scrub_timer
    def scrub(self) -> None:
        scrubber.run(self.registry, self.backends, self.conf)

    # --- orphan data: the sweep, on every replica, run by one per sweep_interval

    @sweep_timer
    def sweep(self) -> None:
        sweep.run(self.registry, self.backends, self.conf)

    @event_handler("registry", "upload.abandoned", handler_type=SERVICE_POOL)
    def delete_abandoned_upload(self, payload: dict) -> None:
        leftovers = payload.get("leftovers") or []
        for store_id in payload.get("stores") or [payload["store"]]:
            backend = self.backends.by_name.get(store_id)
            if backend is not None and backend.writable:
                backend.delete_partial(payload["image_id"], payload["upload_id"])
                if (
                    store_id in leftovers
                    and hasattr(backend, "delete_leftover")
                    and self._still_left_over(backend, payload["image_id"])
                ):
                    backend.delete_leftover(payload["image_id"])

    def _still_left_over(self, backend, image_id: str) -> bool:
        """Whether an abandoned import's complete copy in the file store ``backend`` is
        still no one's, as the sweep judges it: this event can come after a later
        upload of the image has put its own data under the same name."""
        state = self.registry.sweep_states([image_id]).get(image_id)
        return sweep.orphan_reason(backend, image_id, None, state) is not None
