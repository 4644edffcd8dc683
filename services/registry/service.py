"""The registry: the only owner of the metadata database. Thin nameko entrypoints; the
logic lives in images.py and listing.py."""

from __future__ import annotations

from nameko.events import EventDispatcher
from nameko.timer import timer

from services.common.contracts import ListQuery, NewImage, changes_from_wire
from services.common.image_schema import image_validator
from services.common.notifications import (
    Notifications,
    deleted_image_payload,
    image_payload,
    member_payload,
    upload_payload,
)
from services.common.rpc import Context, Settings, rpc
from services.registry import (
    images,
    listing,
    locations,
    members,
    quotas,
    scrubbing,
    sweeping,
    unified_limits,
    uploads,
)
from services.registry.dependencies import Database
from services.registry.import_rpc import ImportRpc
from services.registry.location_rpc import LocationRpc
from services.registry.members import member_record
from services.registry.metadefs.entrypoints import MetadefEntrypoints
from services.registry.protections import PropertyProtections
from services.registry.views import image_with_children, orm_record, record_of, records

# Glance's notification payloads, by event
PAYLOADS = {
    "image.prepare": upload_payload,
    "image.upload": upload_payload,
    "image.delete": deleted_image_payload,
}


class RegistryService(MetadefEntrypoints, ImportRpc, LocationRpc):
    name = "registry"

    db = Database()
    context = Context()
    conf = Settings()
    # Property protections: checked in images.py, applied to every record returned
    # (services/registry/protections.py says why here)
    protections = PropertyProtections()
    # Lifecycle events for the other services (cache eviction, store clean-up).
    dispatch = EventDispatcher(use_confirms=False)
    # Glance's notifications for the rest of the cloud, sent after the commit
    notifier = Notifications()

    def _snapshot(self, session, image_id: str, *events: str) -> dict | None:
        """The image's record inside the transaction, when one of ``events`` will be
        sent (nothing is read when notifications are off)."""
        if not any(self.notifier.enabled(event) for event in events):
            return None
        rows = image_with_children(session, image_id)
        return record_of(rows) if rows else None

    def _notify(self, record: dict | None, *events: str) -> None:
        """Queue ``events`` about the image ``record`` (after the commit)."""
        if record is None:
            return
        for event in events:
            self.notifier.info(event, PAYLOADS.get(event, image_payload)(record))

    @rpc
    def health(self) -> dict:
        with self.db.begin() as session:
            session.connection().exec_driver_sql("SELECT 1")
        return {"service": self.name, "status": "ok"}

    @rpc
    def create_image(self, new: dict) -> dict:
        new_image = NewImage.from_wire(new, image_validator(self.conf))
        with self.db.begin() as session:
            record = orm_record(
                images.create_image(session, self.context, self.conf, new_image, self.protections)
            )
        self.dispatch("image.created", {"image_id": record["id"]})
        self._notify(record, "image.create")
        return self.protections.shown(record, self.context)

    @rpc
    def get_image(self, image_id: str, action: str = "get_image") -> dict:
        """The image's record; ``action="download_image"`` checks that the caller may
        also download its data."""
        with self.db.read() as connection:
            record = images.get_visible_record(
                connection, self.context, image_id, action if action == "download_image" else None
            )
        return self.protections.shown(record, self.context)

    @rpc
    def list_images(self, query: dict) -> dict:
        list_query = ListQuery.from_wire(query)
        with self.db.begin() as session:
            page, more = listing.list_images(session, self.context, list_query)
            shown = [self.protections.shown(r, self.context) for r in records(session, page)]
            return {"images": shown, "more": more}

    @rpc
    def update_image(self, image_id: str, changes: list) -> dict:
        checked = changes_from_wire(changes, image_validator(self.conf))
        with self.db.begin() as session:
            image, removed_locations = images.apply_changes(
                session, self.context, self.conf, image_id, checked, self.protections
            )
            record = orm_record(image)
        self.dispatch("image.updated", {"image_id": image_id})
        self._notify(record, "image.update")
        if removed_locations:
            self.dispatch(
                "location.removed", {"image_id": image_id, "locations": removed_locations}
            )
        return self.protections.shown(record, self.context)

    @rpc
    def delete_from_store(self, image_id: str, store_id: str) -> None:
        """Remove the image's copy in store ``store_id`` (its location here, its data
        by the store service on ``location.removed``)."""
        with self.db.begin() as session:
            url = locations.delete_from_store(session, self.context, image_id, store_id)
            record = self._snapshot(session, image_id, "image.update")
        self.dispatch("image.updated", {"image_id": image_id})
        self._notify(record, "image.update")
        self.dispatch("location.removed", {"image_id": image_id, "locations": [url]})

    @rpc
    def add_tag(self, image_id: str, tag: str) -> None:
        with self.db.begin() as session:
            images.add_tag(session, self.context, self.conf, image_id, tag)
            record = self._snapshot(session, image_id, "image.update")
        self.dispatch("image.updated", {"image_id": image_id})
        self._notify(record, "image.update")

    @rpc
    def remove_tag(self, image_id: str, tag: str) -> None:
        with self.db.begin() as session:
            images.remove_tag(session, self.context, image_id, tag)
            record = self._snapshot(session, image_id, "image.update")
        self.dispatch("image.updated", {"image_id": image_id})
        self._notify(record, "image.update")

    @rpc
    def delete_image(self, image_id: str) -> None:
        with self.db.begin() as session:
            # the payload carries the properties and tags the delete removes
            record = self._snapshot(session, image_id, "image.delete")
            status, locations = images.delete_image(
                session, self.context, image_id, self.conf.delayed_delete
            )
        # with delayed delete the data stays for the scrubber (services/store/scrubber.py)
        # status: a queued image's leftover file goes too (not a pending_delete's data)
        self.dispatch(
            "image.deleted", {"image_id": image_id, "locations": locations, "status": status}
        )
        self._notify(record and {**record, "status": status}, "image.delete")

    # --- uploads: called by the store replica that moves the bytes

    @rpc
    def begin_upload(
        self, image_id: str, upload_id: str, store: str, size: int | None = None
    ) -> dict:
        with self.db.begin() as session:
            claim = uploads.begin_upload(
                session,
                self.context,
                self.conf,
                image_id,
                upload_id,
                store,
                self.conf.store.upload_lease_seconds,
                size,
            )
            record = self._snapshot(session, image_id, "image.update", "image.prepare")
        self.dispatch("image.updated", {"image_id": image_id})
        # as Glance: the image is saved as saving, then set_data announces the write
        self._notify(record, "image.update", "image.prepare")
        return claim

    @rpc
    def renew_upload(self, image_id: str, upload_id: str) -> None:
        with self.db.begin() as session:
            uploads.renew_lease(session, image_id, upload_id, self.conf.store.upload_lease_seconds)

    @rpc
    def renew_uploads(self, upload_ids: list) -> None:
        """Renew the leases of a store replica's uploads (services/store/leases.py)."""
        with self.db.begin() as session:
            uploads.renew_leases(session, upload_ids, self.conf.store.upload_lease_seconds)

    @rpc
    def finish_upload(self, image_id: str, upload_id: str, result: dict) -> None:
        with self.db.begin() as session:
            uploads.finish_upload(session, image_id, upload_id, result)
            record = self._snapshot(
                session, image_id, "image.upload", "image.activate", "image.update"
            )
        self.dispatch("image.activated", {"image_id": image_id})
        self._notify(record, "image.upload", "image.activate", "image.update")

    @rpc
    def abort_upload(self, image_id: str, upload_id: str, reason: str | None = None) -> None:
        """The upload failed (``reason``: why, for the ERROR notification): the image is
        queued again."""
        with self.db.begin() as session:
            aborted = uploads.abort_upload(session, image_id, upload_id, self.conf, reason)
            record = self._snapshot(session, image_id, "image.update") if aborted else None
        self.dispatch("image.updated", {"image_id": image_id})
        if reason is not None:
            # Glance: a plain string at ERROR priority, then the save back to queued
            self.notifier.error("image.upload", reason)
        self._notify(record, "image.update")

    @timer(interval=1)
    def give_up_expired_uploads(self) -> None:
        """Uploads whose store replica died return to queued within about
        ``upload_lease_seconds`` (the replica renews every second); the store removes
        their partial data when it hears of it. Not until the database has answered for
        a whole lease: renewals sent while it was away (or before this registry
        started) could not be recorded."""
        if not self.db.settled(self.conf.store.upload_lease_seconds):
            return
        with self.db.read() as connection:
            if not uploads.any_expired(connection):
                return
        with self.db.begin() as session:
            given_up = uploads.expired_uploads(session, self.conf)
            queued = [self._snapshot(session, u["image_id"], "image.update") for u in given_up]
        for upload, record in zip(given_up, queued, strict=True):
            self.dispatch("upload.abandoned", upload)
            self._notify(record, "image.update")
            if upload["staged"]:  # an import's task failed (services/registry/import_rpc.py)
                self._task_notice(upload["upload_id"], "task.failure")

    # --- delayed delete: called by the scrubber of the store replicas

    @rpc
    def claim_scrub(self, limit: int, after: list | None = None) -> dict:
        """Claim images pending delete for longer than ``scrub_time``
        (services/registry/scrubbing.py)."""
        with self.db.begin() as session:
            return scrubbing.claim_due(
                session, self.conf.scrub_time, self.conf.store.scrub_lease_seconds, limit, after
            )

    @rpc
    def renew_scrub(self, image_id: str, token: str) -> str:
        with self.db.begin() as session:
            return scrubbing.renew_claim(
                session, image_id, token, self.conf.store.scrub_lease_seconds
            )

    @rpc
    def finish_scrub(self, image_id: str, token: str, scrubbed: list) -> bool:
        with self.db.begin() as session:
            return scrubbing.finish(session, image_id, token, scrubbed)

    # --- the store sweep of orphan data (services/store/sweep.py)

    @rpc
    def claim_sweep(self) -> str | None:
        with self.db.begin() as session:
            return sweeping.claim(session, self.conf.store.sweep_lease_seconds)

    @rpc
    def renew_sweep(self, token: str) -> str:
        with self.db.begin() as session:
            return sweeping.renew(session, token, self.conf.store.sweep_lease_seconds)

    @rpc
    def finish_sweep(self, token: str) -> None:
        with self.db.begin() as session:
            sweeping.finish(session, token, self.conf.store.sweep_interval)

    @rpc
    def sweep_states(self, image_ids: list) -> dict:
        with self.db.begin() as session:
            return sweeping.image_states(session, image_ids)

    # --- deactivation

    @rpc
    def set_active(self, image_id: str, active: bool) -> None:
        with self.db.begin() as session:
            images.set_active(session, self.context, image_id, active)
            record = self._snapshot(session, image_id, "image.update")
        self._notify(record, "image.update")
        self.dispatch("image.activated" if active else "image.deactivated", {"image_id": image_id})

    # --- members

    @rpc
    def list_members(self, image_id: str) -> list:
        with self.db.begin() as session:
            return [member_record(m) for m in members.list_members(session, self.context, image_id)]

    @rpc
    def shared_with(self, member_id: str) -> list:
        with self.db.begin() as session:
            return [member_record(m) for m in members.shared_with(session, self.context, member_id)]

    @rpc
    def get_member(self, image_id: str, member_id: str) -> dict:
        with self.db.begin() as session:
            return member_record(members.get_member(session, self.context, image_id, member_id))

    @rpc
    def add_member(self, image_id: str, member_id: str) -> dict:
        with self.db.begin() as session:
            record = member_record(
                members.add_member(session, self.context, self.conf, image_id, member_id)
            )
        self.dispatch("member.created", record)
        self.notifier.info("image.member.create", member_payload(record))
        return record

    @rpc
    def set_member_status(self, image_id: str, member_id: str, status: str) -> dict:
        with self.db.begin() as session:
            record = member_record(
                members.set_member_status(session, self.context, image_id, member_id, status)
            )
        self.dispatch("member.updated", record)
        self.notifier.info("image.member.update", member_payload(record))
        return record

    @rpc
    def remove_member(self, image_id: str, member_id: str) -> None:
        with self.db.begin() as session:
            member = members.remove_member(session, self.context, image_id, member_id)
        self.dispatch("member.deleted", {"image_id": image_id, "member_id": member_id})
        self.notifier.info("image.member.delete", member_payload(member_record(member), True))

    # --- usage

    @rpc
    def usage(self) -> dict:
        with self.db.begin() as session:
            if self.conf.use_keystone_limits:
                return unified_limits.usage(session, self.conf, self.context.project_id)
            return quotas.usage(session, self.context.project_id, self.conf)
