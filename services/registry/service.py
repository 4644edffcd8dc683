"""The registry: the only owner of the metadata database. Thin nameko entrypoints; the
logic lives in images.py and listing.py."""

from __future__ import annotations

from nameko.events import EventDispatcher

from services.common.rpc import Context, Settings, rpc
from services.registry import images, listing
from services.registry.dependencies import Database
from services.registry.views import orm_record, records


class RegistryService:
    name = "registry"

    db = Database()
    context = Context()
    conf = Settings()
    # Lifecycle events for the other services (cache eviction, store clean-up).
    dispatch = EventDispatcher(use_confirms=False)

    @rpc
    def health(self) -> dict:
        with self.db.begin() as session:
            session.connection().exec_driver_sql("SELECT 1")
        return {"service": self.name, "status": "ok"}

    @rpc
    def create_image(self, attributes: dict, properties: dict, tags: list) -> dict:
        with self.db.begin() as session:
            record = orm_record(images.create_image(session, self.context, self.conf,
                                                    attributes, properties, tags))
        self.dispatch("image.created", {"image_id": record["id"]})
        return record

    @rpc
    def get_image(self, image_id: str) -> dict:
        with self.db.begin() as session:
            return records(session, [images.get_visible_row(session, self.context,
                                                            image_id)])[0]

    @rpc
    def list_images(self, query: dict) -> dict:
        with self.db.begin() as session:
            page, more = listing.list_images(session, self.context, query)
            return {"images": records(session, page), "more": more}

    @rpc
    def update_image(self, image_id: str, changes: list) -> dict:
        with self.db.begin() as session:
            record = orm_record(images.apply_changes(session, self.context, self.conf,
                                                      image_id, changes))
        self.dispatch("image.updated", {"image_id": image_id})
        return record

    @rpc
    def add_tag(self, image_id: str, tag: str) -> None:
        with self.db.begin() as session:
            images.add_tag(session, self.context, self.conf, image_id, tag)
        self.dispatch("image.updated", {"image_id": image_id})

    @rpc
    def remove_tag(self, image_id: str, tag: str) -> None:
        with self.db.begin() as session:
            images.remove_tag(session, self.context, image_id, tag)
        self.dispatch("image.updated", {"image_id": image_id})

    @rpc
    def delete_image(self, image_id: str) -> None:
        with self.db.begin() as session:
            image = images.delete_image(session, self.context, image_id)
            locations = [loc.value for loc in image.locations]
        self.dispatch("image.deleted", {"image_id": image_id, "locations": locations})
