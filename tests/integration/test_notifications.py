"""Glance's notifications as the rest of the cloud hears them: a real oslo.messaging
notification listener (as Ceilometer runs one) on the stack's vhost, exchange ``glance``,
topic ``notifications``, receives each event with Glance's payload fields."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import kombu
import oslo_messaging
import pytest
from oslo_config import cfg

from tests.conftest import Api
from tests.integration.test_image_data import upload
from tests.stack import Stack

# format_image_notification's keys (glance/notifier.py)
IMAGE_KEYS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "min_disk",
    "min_ram",
    "protected",
    "checksum",
    "owner",
    "disk_format",
    "container_format",
    "size",
    "virtual_size",
    "is_public",
    "visibility",
    "properties",
    "tags",
    "deleted",
    "deleted_at",
}
UPLOAD_KEYS = IMAGE_KEYS | {"os_glance_importing_to_stores", "os_glance_failed_import"}
MEMBER_KEYS = {"image_id", "member_id", "status", "created_at", "updated_at", "deleted"}
MEMBER_KEYS |= {"deleted_at"}
PUBLISHER = "image.testhost"


class Heard:
    """An oslo.messaging notification endpoint that keeps everything it hears."""

    def __init__(self):
        self.events: list[dict] = []
        self.changed = threading.Condition()

    def _keep(self, priority, publisher_id, event_type, payload, metadata):
        with self.changed:
            self.events.append(
                {
                    "priority": priority,
                    "publisher_id": publisher_id,
                    "event_type": event_type,
                    "payload": payload,
                    "metadata": metadata,
                }
            )
            self.changed.notify_all()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("INFO", publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("ERROR", publisher_id, event_type, payload, metadata)

    def about(self, image_id: str) -> list[dict]:
        with self.changed:
            return [e for e in self.events if subject(e) == image_id]

    def wait_for(self, image_id: str, *event_types: str, timeout: float = 15) -> list[dict]:
        """The events about ``image_id`` once every one of ``event_types`` was heard."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                events = [e for e in self.events if subject(e) == image_id]
                heard = [e["event_type"] for e in events]
                if all(heard.count(t) >= event_types.count(t) for t in set(event_types)):
                    return events
                left = deadline - time.monotonic()
                assert left > 0, f"heard only {heard} for {image_id}, waiting for {event_types}"
                self.changed.wait(left)


def subject(event: dict) -> str | None:
    payload = event["payload"]
    if isinstance(payload, str):  # an ERROR's message names the image
        return next((w.rstrip(":") for w in payload.split() if len(w.rstrip(":")) == 36), None)
    return payload.get("id") or payload.get("image_id")


class Listener:
    """``oslo_messaging.get_notification_listener`` on the stack's broker."""

    def __init__(self, transport_url: str):
        conf = cfg.ConfigOpts()
        conf(args=[], default_config_files=[], default_config_dirs=[])
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self.heard = Heard()
        self.listener = oslo_messaging.get_notification_listener(
            self.transport,
            [oslo_messaging.Target(exchange="glance", topic="notifications")],
            [self.heard],
            executor="threading",
        )
        self.listener.start()

    def stop(self) -> None:
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


def notifying_stack(tmp_path_factory, name: str, **notifications) -> Stack:
    return Stack(
        tmp_path_factory.mktemp(name),
        sections={
            "DEFAULT": {"default_publisher_id": PUBLISHER, **notifications.pop("DEFAULT", {})},
            "oslo_messaging_notifications": notifications,
        },
    )


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """A stack that sends notifications (driver messagingv2) and a listener on its broker."""
    stack = notifying_stack(tmp_path_factory, "notify", driver="messagingv2")
    listener = Listener(stack.vhost.transport_url)
    try:
        stack.start()
        yield stack, listener.heard
    finally:
        listener.stop()
        stack.cleanup()


def only(events: list[dict], event_type: str) -> dict:
    (event,) = [e for e in events if e["event_type"] == event_type]
    return event


def test_image_lifecycle_notifications(heard):
    stack, listened = heard
    api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
    other = Api(stack.url, project=f"other-{uuid.uuid4().hex[:8]}")
    image = api.create(
        name="noted",
        disk_format="raw",
        container_format="bare",
        visibility="shared",
        tags=["a"],
        flavour="x",
    )
    image_id = image["id"]
    create = only(listened.wait_for(image_id, "image.create"), "image.create")
    assert create["priority"] == "INFO" and create["publisher_id"] == PUBLISHER
    payload = create["payload"]
    assert set(payload) == IMAGE_KEYS
    assert payload["status"] == "queued" and payload["owner"] == api.project
    assert payload["properties"] == {"flavour": "x"} and payload["tags"] == ["a"]
    assert payload["is_public"] is False and payload["visibility"] == "shared"
    assert payload["deleted"] is False and payload["deleted_at"] is None
    assert payload["created_at"] == image["created_at"]

    # upload: queued -> saving, prepare, upload, activate, saving -> active
    assert upload(api, image_id, b"notified bytes").status_code == 204
    events = listened.wait_for(
        image_id, "image.update", "image.update", "image.prepare", "image.upload", "image.activate"
    )
    sequence = [e["event_type"] for e in events if e["event_type"] != "image.create"]
    assert sequence == [
        "image.update",
        "image.prepare",
        "image.upload",
        "image.activate",
        "image.update",
    ]
    saving, prepare, uploaded, activate, active = events[1:]
    assert saving["payload"]["status"] == "saving" and prepare["payload"]["status"] == "saving"
    assert set(prepare["payload"]) == set(uploaded["payload"]) == UPLOAD_KEYS
    assert uploaded["payload"]["os_glance_importing_to_stores"] == []
    assert uploaded["payload"]["size"] == len(b"notified bytes")
    assert uploaded["payload"]["checksum"] == api.get(f"/v2/images/{image_id}").json()["checksum"]
    assert activate["payload"]["status"] == active["payload"]["status"] == "active"
    assert set(active["payload"]) == IMAGE_KEYS

    # PATCH
    resp = api.patch(f"/v2/images/{image_id}", [{"op": "replace", "path": "/name", "value": "b"}])
    assert resp.status_code == 200, resp.text
    events = listened.wait_for(image_id, *["image.update"] * 3)
    assert [e for e in events if e["event_type"] == "image.update"][-1]["payload"]["name"] == "b"

    # members
    path = f"/v2/images/{image_id}/members"
    assert api.post(path, json={"member": other.project}).status_code == 200
    accepted = other.put(f"{path}/{other.project}", json={"status": "accepted"})
    assert accepted.status_code == 200

    # download, by the owner and by the member: image.send once the bytes are sent
    assert api.get(f"/v2/images/{image_id}/file").content == b"notified bytes"
    assert other.get(f"/v2/images/{image_id}/file").content == b"notified bytes"
    events = listened.wait_for(image_id, "image.send", "image.send")
    sends = [e for e in events if e["event_type"] == "image.send"]
    assert [e["priority"] for e in sends] == ["INFO", "INFO"]
    # in either order: each store session ends on its own
    assert sorted((e["payload"] for e in sends), key=lambda p: p["receiver_tenant_id"]) == [
        {
            "bytes_sent": len(b"notified bytes"),
            "image_id": image_id,
            "owner_id": api.project,
            "receiver_tenant_id": receiver.project,
            "receiver_user_id": "test-user",
        }
        for receiver in sorted((api, other), key=lambda a: a.project)
    ]

    assert api.delete(f"{path}/{other.project}").status_code == 204
    events = listened.wait_for(
        image_id, "image.member.create", "image.member.update", "image.member.delete"
    )
    created = only(events, "image.member.create")["payload"]
    assert set(created) == MEMBER_KEYS
    assert created["member_id"] == other.project and created["status"] == "pending"
    assert only(events, "image.member.update")["payload"]["status"] == "accepted"
    removed = only(events, "image.member.delete")["payload"]
    assert removed["deleted"] is True and removed["deleted_at"]

    # delete: the full payload, deleted
    assert api.delete(f"/v2/images/{image_id}").status_code == 204
    deleted = only(listened.wait_for(image_id, "image.delete"), "image.delete")
    assert deleted["priority"] == "INFO" and set(deleted["payload"]) == IMAGE_KEYS
    assert deleted["payload"]["deleted"] is True and deleted["payload"]["deleted_at"]
    assert deleted["payload"]["status"] == "deleted"
    assert deleted["payload"]["properties"] == {"flavour": "x"}


def test_failed_upload_is_an_error_notification(heard):
    """Glance: ``image.upload`` at ERROR with a plain string, then the image queued again."""
    stack, listened = heard
    api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
    image = api.create(name="bad", disk_format="qcow2", container_format="bare")
    resp = upload(api, image["id"], b"not a qcow2 image" * 100)
    assert resp.status_code == 415, resp.text
    events = listened.wait_for(image["id"], "image.upload", *["image.update"] * 2)
    failure = only(events, "image.upload")
    assert failure["priority"] == "ERROR" and isinstance(failure["payload"], str)
    assert image["id"] in failure["payload"]
    assert events[-1]["event_type"] == "image.update"
    assert events[-1]["payload"]["status"] == "queued"


def test_disabled_notifications(tmp_path_factory):
    """``disabled_notifications``: a single event (image.update) and a group
    (image.member) are not sent; the rest is."""
    stack = notifying_stack(
        tmp_path_factory,
        "notify-disabled",
        driver="messagingv2",
        DEFAULT={"disabled_notifications": "image.update,image.member"},
    )
    listener = Listener(stack.vhost.transport_url)
    try:
        stack.start()
        api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
        image = api.create(name="quiet", disk_format="raw", container_format="bare")
        image_id = image["id"]
        api.patch(f"/v2/images/{image_id}", [{"op": "replace", "path": "/name", "value": "q"}])
        api.patch(
            f"/v2/images/{image_id}", [{"op": "replace", "path": "/visibility", "value": "shared"}]
        )
        assert api.post(f"/v2/images/{image_id}/members", json={"member": "p2"}).status_code == 200
        assert api.delete(f"/v2/images/{image_id}").status_code == 204
        # one sender sends in order: once the delete is heard, nothing else is coming
        events = listener.heard.wait_for(image_id, "image.create", "image.delete")
        assert [e["event_type"] for e in events] == ["image.create", "image.delete"]
    finally:
        listener.stop()
        stack.cleanup()


def test_noop_driver_sends_nothing(tmp_path_factory):
    stack = notifying_stack(tmp_path_factory, "notify-noop", driver="noop")
    listener = Listener(stack.vhost.transport_url)
    try:
        stack.start()
        api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
        image = api.create(name="silent", disk_format="raw", container_format="bare")
        assert upload(api, image["id"], b"silent").status_code == 204
        assert api.delete(f"/v2/images/{image['id']}").status_code == 204
        time.sleep(2)
        assert listener.heard.events == []
    finally:
        listener.stop()
        stack.cleanup()


def test_unreachable_notification_broker_slows_nothing(tmp_path_factory):
    """Notifications to a broker that refuses connections (retried forever, as oslo's
    default): every request still answers at once, and the stack stops promptly."""
    stack = notifying_stack(
        tmp_path_factory,
        "notify-down",
        driver="messagingv2",
        transport_url="rabbit://guest:guest@127.0.0.1:9/",
    )
    try:
        stack.start()
        api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
        started = time.monotonic()
        for _ in range(5):
            image = api.create(name="unheard", disk_format="raw", container_format="bare")
            assert upload(api, image["id"], b"unheard").status_code == 204
            assert api.get(f"/v2/images/{image['id']}/file").content == b"unheard"
            assert api.delete(f"/v2/images/{image['id']}").status_code == 204
        assert time.monotonic() - started < 10
        started = time.monotonic()
        stack.stop()
        assert time.monotonic() - started < 20
    finally:
        stack.cleanup()


def test_wire_format_is_oslo_messaging_v2(heard):
    """What a plain AMQP consumer sees (reference checklist): exchange ``glance`` (topic),
    routing key ``notifications.info``, the 2.0 envelope with the message JSON inside."""
    stack, listened = heard
    exchange = kombu.Exchange("glance", type="topic", durable=False)
    with kombu.Connection(stack.vhost.transport_url.replace("rabbit://", "amqp://")) as conn:
        queue = kombu.Queue(
            f"raw-{uuid.uuid4().hex[:8]}",
            exchange,
            routing_key="notifications.info",
            auto_delete=True,
        )(conn.channel())
        queue.declare()
        api = Api(stack.url, project=f"project-{uuid.uuid4().hex[:8]}")
        image = api.create(name="raw", disk_format="raw", container_format="bare")
        deadline = time.monotonic() + 15
        while True:
            assert time.monotonic() < deadline, "no image.create on the glance exchange"
            message = queue.get(no_ack=True)
            if message is None:
                time.sleep(0.1)
                continue
            body = json.loads(message.body)
            inner = json.loads(body["oslo.message"])
            if inner["payload"].get("id") == image["id"]:
                break
    assert message.content_type == "application/json"
    assert message.delivery_info["exchange"] == "glance"
    assert message.delivery_info["routing_key"] == "notifications.info"
    assert set(body) == {"oslo.version", "oslo.message"} and body["oslo.version"] == "2.0"
    assert set(inner) == {
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
        "_unique_id",
    }  # no _context_* keys: Glance sends an empty context
    assert inner["event_type"] == "image.create" and inner["priority"] == "INFO"
    assert inner["publisher_id"] == PUBLISHER
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?", inner["timestamp"])


def test_metadef_notifications(heard):
    """Metadef writes send Glance's metadef_* notifications (glance/notifier.py)."""
    stack, events = heard
    admin = Api(stack.url, project="md-admin", roles="admin")
    ns = f"notify-{uuid.uuid4().hex[:8]}"
    base = "/v2/metadefs/namespaces"
    body = {"namespace": ns, "tags": [{"name": "a"}]}
    assert admin.post(base, json=body).status_code == 201
    prop = {"name": "p", "title": "P", "type": "string"}
    assert admin.post(f"{base}/{ns}/properties", json=prop).status_code == 201
    assert admin.put(f"{base}/{ns}", json={"namespace": f"{ns}-2"}).status_code == 200
    assert admin.delete(f"{base}/{ns}-2").status_code == 204
    wanted = [
        "metadef_namespace.create",
        "metadef_tag.create",
        "metadef_property.create",
        "metadef_namespace.update",
        "metadef_namespace.delete",
    ]
    deadline = time.monotonic() + 15
    with events.changed:
        while True:
            mine = {
                e["event_type"]: e["payload"]
                for e in events.events
                if e["event_type"].startswith("metadef_")
                and e["payload"].get("namespace") in (ns, f"{ns}-2")
            }
            if set(wanted) <= set(mine) or time.monotonic() > deadline:
                break
            events.changed.wait(1)
    assert set(wanted) <= set(mine), sorted(mine)
    assert mine["metadef_namespace.update"]["namespace_old"] == ns
    assert mine["metadef_namespace.delete"]["deleted"] is True
    assert mine["metadef_property.create"]["type"] == "string"
    assert mine["metadef_tag.create"]["name"] == "a"
