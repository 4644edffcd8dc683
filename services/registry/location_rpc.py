"""The registry's RPC entrypoints of the 2.17 location API (a mixin of RegistryService,
as import_rpc.py); the logic lives in location_import.py."""

from __future__ import annotations

from services.common.rpc import rpc
from services.registry import location_import, tasks


class LocationRpc:
    """Uses ImportRpc's helpers and RegistryService's ``db``, ``context``, ``conf``."""

    @rpc
    def add_location(self, image_id: str, url: str, validation_data: dict | None) -> dict:
        """``POST /v2/images/{id}/locations``: the ``location_import`` task, announced to
        the store replicas (one of them runs it)."""
        validation_data = location_import.check_validation_data(
            validation_data, self.conf.hashing_algorithm
        )
        with self.db.begin() as session:
            task = location_import.begin_location_import(
                session,
                self.context,
                self.conf,
                image_id,
                url,
                validation_data,
                self._lease_seconds(),
            )
            record = tasks.task_record(task)
            image_record = self._image_updated(session, image_id)
        self._announce_import(task.id, image_id, image_record)
        return record

    @rpc
    def image_locations(self, image_id: str) -> list:
        with self.db.begin() as session:
            return location_import.image_locations(session, self.context, image_id)
