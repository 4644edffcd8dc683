"""Glance's notifications for the rest of the cloud (Ceilometer, billing, audit), sent
with oslo.messaging's own Notifier: exchange ``glance``, topic ``notifications``, the
``messagingv2`` envelope, Glance's event types and payloads (``format_*_notification`` in
glance/notifier.py).

Options, with Glance's names: ``[oslo_messaging_notifications] driver`` (unset: nothing
is sent, as Glance), ``topics``, ``transport_url`` (default: ``[DEFAULT] transport_url``),
``retry``; ``[DEFAULT] default_publisher_id`` and ``disabled_notifications``.

A notification is queued after the change it reports is committed and sent by one green
thread of the service: a slow or unreachable broker never fails or slows the RPC that
caused it. Failures are logged; past ``QUEUE_SIZE`` waiting notifications, new ones are
dropped with a warning.

oslo.messaging gets a ConfigOpts of its own, parsed from the same files: it registers its
``[oslo_messaging_rabbit]`` options there (TLS, heartbeats, durable or quorum queues for
the notification queue, as Glance's notifier honours them), beside Tessera's own
registrations of those names, which differ in type and help.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import eventlet
import eventlet.queue
import oslo_messaging
from nameko.extensions import DependencyProvider
from oslo_config import cfg

from services.common.notification_rules import NO_DRIVERS, drivers, is_disabled, sends

__all__ = ["NO_DRIVERS", "Notifications", "Notifier", "drivers", "is_disabled", "sends"]

log = logging.getLogger(__name__)

EXCHANGE = "glance"
QUEUE_SIZE = 10000
#: seconds a stopping service waits for queued notifications to be sent
DRAIN_SECONDS = 2.0


def _isotime(value: datetime | None = None) -> str:
    value = value or datetime.now(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_payload(record: dict) -> dict:
    """Glance's ``format_image_notification`` of an image record (locations are left
    out: they may carry credentials)."""
    return {
        "id": record["id"],
        "name": record["name"],
        "status": record["status"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "min_disk": record["min_disk"],
        "min_ram": record["min_ram"],
        "protected": record["protected"],
        "checksum": record["checksum"],
        "owner": record["owner"],
        "disk_format": record["disk_format"],
        "container_format": record["container_format"],
        "size": record["size"],
        "virtual_size": record["virtual_size"],
        "is_public": record["visibility"] == "public",
        "visibility": record["visibility"],
        "properties": dict(record["properties"]),
        "tags": list(record["tags"]),
        "deleted": False,
        "deleted_at": None,
    }


def upload_payload(record: dict) -> dict:
    """The image payload of ``image.prepare`` and ``image.upload``: with the import
    properties as lists (Glance's ``_format_import_properties``)."""
    properties = record["properties"]
    return {
        **image_payload(record),
        **{
            name: properties[name].split(",") if properties.get(name) else []
            for name in ("os_glance_importing_to_stores", "os_glance_failed_import")
        },
    }


def deleted_image_payload(record: dict) -> dict:
    """``image.delete``: the image as the delete left it, ``deleted`` or (delayed delete)
    ``pending_delete``."""
    status = "pending_delete" if record["status"] == "pending_delete" else "deleted"
    return {**image_payload(record), "status": status, "deleted": True, "deleted_at": _isotime()}


def member_payload(record: dict, deleted: bool = False) -> dict:
    """Glance's ``format_image_member_notification``."""
    return {
        "image_id": record["image_id"],
        "member_id": record["member_id"],
        "status": record["status"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "deleted": deleted,
        "deleted_at": _isotime() if deleted else None,
    }


def messaging_config(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """The ConfigOpts oslo.messaging is given: the same files (and environment) as
    ``conf``, with the notification options as ``conf`` has them."""
    own = cfg.ConfigOpts()
    own(
        args=[],
        project="tessera",
        default_config_files=list(getattr(conf, "config_file", None) or []),
        default_config_dirs=[],
    )
    return own


class Notifier:
    """Queues notifications for one green sender thread; ``enabled(event_type)`` tells a
    caller whether building a payload is worth it."""

    def __init__(self, conf: cfg.ConfigOpts):
        self.disabled = list(conf.disabled_notifications)
        self.driver_names = drivers(conf)
        self._notifier = None
        self._transport = None
        self._queue = None
        if not self.driver_names:
            return
        # Glance's notifier.set_defaults(control_exchange='glance')
        oslo_messaging.set_transport_defaults(EXCHANGE)
        options = conf.oslo_messaging_notifications
        self._transport = oslo_messaging.get_notification_transport(
            messaging_config(conf), url=options.transport_url or conf.transport_url
        )
        own = self._transport.conf
        own.set_override("driver", self.driver_names, group="oslo_messaging_notifications")
        own.set_override("topics", options.topics, group="oslo_messaging_notifications")
        self._notifier = oslo_messaging.Notifier(
            self._transport, publisher_id=conf.default_publisher_id, retry=options.retry
        )
        self._queue = eventlet.queue.LightQueue(QUEUE_SIZE)

    def enabled(self, event_type: str) -> bool:
        return self._notifier is not None and not is_disabled(event_type, self.disabled)

    def info(self, event_type: str, payload) -> None:
        self._put("info", event_type, payload)

    def error(self, event_type: str, payload) -> None:
        self._put("error", event_type, payload)

    def _put(self, priority: str, event_type: str, payload) -> None:
        if not self.enabled(event_type):
            return
        try:
            self._queue.put_nowait((priority, event_type, payload))
        except eventlet.queue.Full:
            log.warning(
                "notification %s dropped: %d are waiting to be sent", event_type, QUEUE_SIZE
            )

    def run(self) -> None:
        """The sender: one notification at a time, until ``None``."""
        while True:
            item = self._queue.get()
            if item is None:
                return
            priority, event_type, payload = item
            try:
                # Glance sends with an empty context: no _context_* keys on the wire
                getattr(self._notifier, priority)({}, event_type, payload)
            except Exception:
                log.exception("notification %s could not be sent", event_type)

    def stop(self, sender) -> None:
        """Send what is queued (for up to DRAIN_SECONDS), then close the transport."""
        if self._queue is None:
            return
        if sender is not None:
            with eventlet.Timeout(DRAIN_SECONDS, False):
                self._queue.put(None)
                sender.wait()
            sender.kill()
        self._transport.cleanup()


class Notifications(DependencyProvider):
    """Injects the service's Notifier; its sender runs as a managed thread of the
    container."""

    def setup(self):
        self.notifier = Notifier(self.container.config["TESSERA_CONF"])
        self.sender = None

    def start(self):
        if self.notifier.driver_names:
            self.sender = self.container.spawn_managed_thread(
                self.notifier.run, identifier="notifications"
            )

    def stop(self):
        self.notifier.stop(self.sender)
        self.sender = None

    def kill(self):
        if self.sender is not None:
            self.sender.kill()
        self.sender = None

    def get_dependency(self, worker_ctx) -> Notifier:
        return self.notifier
