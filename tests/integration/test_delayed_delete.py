"""Delayed delete and the scrubber on a real stack with two store replicas storing in a
real Swift, on SQLite and MariaDB: a deleted image is pending_delete (hidden, not
downloadable, its data kept), scrubbed once pending for scrub_time, restorable until then;
two replicas never scrub one image twice; a replica killed mid-scrub (its Swift delete
hanging) leaves a claim that the next run takes over, and no object is left behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import timedelta

import kombu
import psutil
import pytest
from sqlalchemy import select, update
from swiftclient.client import Connection

from services.common.config import load_config
from services.registry.db import make_engine
from services.registry.manage import main as manage_main
from services.registry.models import Image, ImageLocation
from tests.conftest import Api, random_image
from tests.integration.test_image_data import upload, wait_for
from tests.integration.test_store_replicas import store_consumers, store_pids
from tests.stack import ROOT, Stack

CONTAINER = "tessera-scrub-images"
SCRUB_TIME = 3600  # nothing is due by itself: a test makes an image due by backdating it
LEASE = 3


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def scrub_stack(request, swift, tmp_path_factory):
    """delayed_delete on, the scrubber waking every second, images in Swift, two store
    replicas; a queue that hears Glance's notifications."""
    stack = Stack(
        tmp_path_factory.mktemp(f"scrub-{request.param}"),
        mysql=request.param == "mysql",
        sections={
            "DEFAULT": {
                "delayed_delete": True,
                "scrub_time": SCRUB_TIME,
                "wakeup_time": 1,
                "scrub_pool_size": 2,
            },
            "store": {"scrub_lease_seconds": LEASE},
            "oslo_messaging_notifications": {"driver": "messagingv2"},
            "glance_store": swift.glance_store_options(CONTAINER),
        },
    )
    stack.notifications = Notifications(stack.vhost.transport_url)
    stack.start()
    stack.start_service("store")
    wait_for(lambda: store_consumers(stack) == 2, timeout=60, what="both replicas consuming")
    stack.db = make_engine(load_config(["--config-file", str(stack.config)]), pool_size=1)
    yield stack
    stack.db.dispose()
    stack.notifications.close()
    stack.cleanup()


class Notifications:
    """A queue bound to Glance's exchange before the stack starts: every INFO
    notification the stack sends."""

    def __init__(self, transport_url: str):
        self.conn = kombu.Connection(transport_url.replace("rabbit://", "amqp://"))
        exchange = kombu.Exchange("glance", type="topic", durable=False, auto_delete=False)
        self.queue = kombu.Queue(
            f"scrub-test-{uuid.uuid4().hex[:8]}",
            exchange,
            routing_key="notifications.info",
            durable=False,
        )(self.conn.channel())
        self.queue.declare()
        self.heard: list[dict] = []

    def of(self, event_type: str, image_id: str) -> list[dict]:
        while (message := self.queue.get(no_ack=True)) is not None:
            self.heard.append(json.loads(message.payload["oslo.message"]))
        return [
            n["payload"]
            for n in self.heard
            if n["event_type"] == event_type and n["payload"].get("id") == image_id
        ]

    def close(self) -> None:
        self.conn.release()


@pytest.fixture(scope="module")
def objects(swift):
    conn = Connection(swift.auth_url, swift.user, swift.key, auth_version="1")

    def names(prefix: str) -> list[str]:
        return [
            o["name"] for o in conn.get_container(CONTAINER, prefix=prefix, full_listing=True)[1]
        ]

    yield names
    conn.close()


@pytest.fixture
def sapi(scrub_stack):
    return Api(scrub_stack.url, project=f"scrub-{os.urandom(4).hex()}")


def stored_image(api, data: bytes | None = None) -> tuple[str, bytes]:
    data = data if data is not None else random_image(3000)
    image = api.create(name="scrubbable", disk_format="raw", container_format="bare")
    assert upload(api, image["id"], data).status_code == 204
    return image["id"], data


def db_row(stack, image_id: str):
    with stack.db.connect() as conn:
        return conn.execute(select(Image.status, Image.deleted).where(Image.id == image_id)).one()


def location_statuses(stack, image_id: str) -> list[str]:
    with stack.db.connect() as conn:
        return list(
            conn.scalars(
                select(ImageLocation.status)
                .where(ImageLocation.image_id == image_id)
                .order_by(ImageLocation.id)
            )
        )


def make_due(stack, *image_ids: str) -> None:
    """As if the images had been deleted two scrub_times ago (still never claimed)."""
    with stack.db.begin() as conn:
        for image_id in image_ids:
            deleted_at = conn.scalar(
                select(Image.deleted_at).where(
                    Image.id == image_id, Image.updated_at == Image.deleted_at
                )
            )
            then = deleted_at - timedelta(seconds=2 * SCRUB_TIME)
            conn.execute(
                update(Image).where(Image.id == image_id).values(deleted_at=then, updated_at=then)
            )


def scrubbed(stack, image_id: str) -> bool:
    return db_row(stack, image_id).status == "deleted"


def manage(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.registry.manage", "--config-file", str(stack.config)]
        + list(args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def log_pids(stack, what: str, image_id: str) -> list[int]:
    """The pids of the store replicas that logged ``what`` (scrubbing / scrubbed) of the
    image."""
    return [
        int(pid)
        for pid in re.findall(rf" (\d+) INFO [^\n]*\] {what} image {image_id}\b", stack.logs())
    ]


def test_a_deleted_image_is_hidden_and_its_data_kept(scrub_stack, sapi, objects):
    image_id, _ = stored_image(sapi)
    assert sapi.delete(f"/v2/images/{image_id}").status_code == 204
    assert sapi.get(f"/v2/images/{image_id}").status_code == 404
    assert sapi.get(f"/v2/images/{image_id}/file").status_code == 404
    assert sapi.delete(f"/v2/images/{image_id}").status_code == 404
    listed = sapi.get("/v2/images").json()["images"]
    assert image_id not in {i["id"] for i in listed}
    assert sapi.get("/v2/images?status=pending_delete").json()["images"] == []
    assert db_row(scrub_stack, image_id) == ("pending_delete", True)
    assert location_statuses(scrub_stack, image_id) == ["pending_delete"]
    assert objects(image_id) == [image_id]
    # Glance's image.delete for a delayed delete: the image as pending_delete
    wait_for(lambda: scrub_stack.notifications.of("image.delete", image_id), what="image.delete")
    (payload,) = scrub_stack.notifications.of("image.delete", image_id)
    assert (payload["status"], payload["deleted"]) == ("pending_delete", True)


def test_an_image_without_data_is_deleted_at_once(scrub_stack, sapi):
    image = sapi.create(name="empty", disk_format="raw", container_format="bare")
    assert sapi.delete(f"/v2/images/{image['id']}").status_code == 204
    assert db_row(scrub_stack, image["id"]) == ("deleted", True)


def test_images_pending_for_scrub_time_are_scrubbed(scrub_stack, sapi, objects):
    due, _ = stored_image(sapi)
    kept, _ = stored_image(sapi)
    for image_id in (due, kept):
        assert sapi.delete(f"/v2/images/{image_id}").status_code == 204
    make_due(scrub_stack, due)
    wait_for(lambda: scrubbed(scrub_stack, due), timeout=30, what="the scrub")
    assert objects(due) == []
    assert location_statuses(scrub_stack, due) == ["deleted"]
    assert db_row(scrub_stack, kept) == ("pending_delete", True)  # not due: untouched
    assert objects(kept) == [kept]


def test_restore_brings_a_pending_image_back(scrub_stack, sapi):
    image_id, data = stored_image(sapi)
    sapi.patch(f"/v2/images/{image_id}", [{"op": "add", "path": "/os_distro", "value": "x"}])
    assert sapi.delete(f"/v2/images/{image_id}").status_code == 204
    out = manage(scrub_stack, "scrubber", "restore", image_id)
    assert out.returncode == 0, out.stderr
    shown = sapi.get(f"/v2/images/{image_id}").json()
    assert (shown["status"], shown["os_distro"]) == ("active", "x")
    assert sapi.get(f"/v2/images/{image_id}/file").content == data
    # the refusals, through the same command in this process (no interpreter to start)
    for image, refusal in (
        (image_id, "cannot restore the image from active to active"),
        (str(uuid.uuid4()), "No image found"),
    ):
        with pytest.raises(SystemExit, match=f"ERROR: {refusal}"):
            manage_main(["--config-file", str(scrub_stack.config), "scrubber", "restore", image])


def test_two_replicas_never_scrub_the_same_image(scrub_stack, sapi, objects):
    image_ids = [stored_image(sapi, b"x" * 100)[0] for _ in range(10)]
    for image_id in image_ids:
        assert sapi.delete(f"/v2/images/{image_id}").status_code == 204
    make_due(scrub_stack, *image_ids)
    wait_for(lambda: all(scrubbed(scrub_stack, i) for i in image_ids), timeout=60, what="the scrub")
    for image_id in image_ids:
        assert len(log_pids(scrub_stack, "scrubbing", image_id)) == 1
        assert len(log_pids(scrub_stack, "scrubbed", image_id)) == 1
        assert objects(image_id) == []
        assert len(scrub_stack.notifications.of("image.delete", image_id)) == 1


def test_a_replica_killed_mid_scrub(scrub_stack, sapi, objects, swift):
    image_id, _ = stored_image(sapi, random_image(5000))
    assert sapi.delete(f"/v2/images/{image_id}").status_code == 204
    with swift.paused("proxy"):  # the replica's Swift delete hangs
        make_due(scrub_stack, image_id)
        wait_for(lambda: log_pids(scrub_stack, "scrubbing", image_id), timeout=30, what="a claim")
        (holder,) = log_pids(scrub_stack, "scrubbing", image_id)
        assert holder in store_pids(scrub_stack)
        psutil.Process(holder).send_signal(signal.SIGKILL)
    assert db_row(scrub_stack, image_id) == ("pending_delete", True)
    # the claim lapses; the next run, on the other replica, takes it over and finishes
    wait_for(lambda: scrubbed(scrub_stack, image_id), timeout=60, what="the scrub to resume")
    assert objects(image_id) == []
    assert location_statuses(scrub_stack, image_id) == ["deleted"]
    finishers = log_pids(scrub_stack, "scrubbed", image_id)
    assert len(finishers) == 1 and finishers[0] != holder
    if holder in {p.pid for p in scrub_stack.extra}:  # else tessera-run restarts it
        scrub_stack.extra = [p for p in scrub_stack.extra if p.pid != holder]
        scrub_stack.start_service("store")


def test_without_delayed_delete_data_goes_at_once(stack, api):
    """The default stack (delayed_delete off): nothing pending, the data removed."""
    image_id, _ = stored_image(api)
    assert api.delete(f"/v2/images/{image_id}").status_code == 204
    assert api.get(f"/v2/images/{image_id}").status_code == 404
    wait_for(lambda: not list(stack.datadir.glob(f"{image_id}*")), what="the data to go")
    engine = make_engine(load_config(["--config-file", str(stack.config)]), pool_size=1)
    try:
        with engine.connect() as conn:
            status = conn.scalar(select(Image.status).where(Image.id == image_id))
    finally:
        engine.dispose()
    assert status == "deleted"
