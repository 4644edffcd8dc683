"""Delayed delete and the scrubber's claims against a real SQLite database
(services/registry/scrubbing.py)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from services.common.errors import BadRequest, Conflict, NotFound
from services.registry import images, scrubbing
from services.registry.models import (
    Image,
    ImageLocation,
    ImageProperty,
    ImageTag,
    utcnow,
)
from tests.unit.registry.builders import OWNER

LEASE = 60


@pytest.fixture
def stored(session):
    """An active image of OWNER with a property, a tag and ``locations`` file locations."""

    def make(locations: int = 1, status: str = "active") -> str:
        image_id = str(uuid.uuid4())
        now = utcnow()
        session.add(
            Image(
                id=image_id,
                status=status,
                visibility="shared",
                owner=OWNER.project_id,
                size=3,
                created_at=now,
                updated_at=now,
                properties=[ImageProperty(name="os_distro", value="cirros")],
                tags=[ImageTag(value="t", created_at=now)],
                locations=[
                    ImageLocation(value=f"file:///data/{image_id}.{n}", created_at=now)
                    for n in range(locations)
                ],
            )
        )
        session.commit()
        return image_id

    return make


def pending(session, stored, locations: int = 1) -> str:
    image_id = stored(locations)
    assert images.delete_image(session, OWNER, image_id, delayed=True) == ("pending_delete", [])
    session.commit()
    return image_id


def row(session, image_id) -> Image:
    session.expire_all()
    return session.get(Image, image_id)


def location_statuses(session, image_id) -> list[str]:
    return list(
        session.scalars(
            select(ImageLocation.status)
            .where(ImageLocation.image_id == image_id)
            .order_by(ImageLocation.id)
        )
    )


def claim(session, scrub_time=0, lease=LEASE, limit=10, after=None) -> dict:
    batch = scrubbing.claim_due(session, scrub_time, lease, limit, after)
    session.commit()
    return batch


def test_delayed_delete_hides_the_image_and_keeps_its_data_and_children(session, stored):
    image_id = pending(session, stored)
    image = row(session, image_id)
    assert (image.status, image.deleted) == ("pending_delete", True)
    assert image.deleted_at == image.updated_at  # never claimed
    assert [p.name for p in image.properties] == ["os_distro"] and len(image.tags) == 1
    assert location_statuses(session, image_id) == ["pending_delete"]
    with pytest.raises(NotFound):
        images.get_visible(session, OWNER, image_id)


def test_without_delayed_delete_or_data_the_image_is_deleted_at_once(session, stored):
    image_id = stored()
    status, gone = images.delete_image(session, OWNER, image_id)
    assert status == "deleted" and gone == [f"file:///data/{image_id}.0"]
    no_data = stored(locations=0)
    assert images.delete_image(session, OWNER, no_data, delayed=True) == ("deleted", [])
    session.commit()
    assert row(session, no_data).status == "deleted"


def test_a_deactivated_image_cannot_be_delayed_deleted_as_in_glance(session, stored):
    image_id = stored(status="deactivated")
    with pytest.raises(BadRequest, match="from deactivated to pending_delete"):
        images.delete_image(session, OWNER, image_id, delayed=True)


def test_only_images_pending_for_scrub_time_are_claimed(session, stored):
    image_id = pending(session, stored)
    assert claim(session, scrub_time=3600) == {"claims": [], "next": None}
    batch = claim(session)
    assert [c["image_id"] for c in batch["claims"]] == [image_id]
    assert batch["claims"][0]["locations"][0]["url"] == f"file:///data/{image_id}.0"


def test_a_claimed_image_is_not_claimed_again_until_its_lease_lapses(session, stored):
    image_id = pending(session, stored)
    first = claim(session)["claims"][0]
    assert claim(session) == {"claims": [], "next": None}  # held by the first replica
    # a lease that lapsed at once: the holder died
    row(session, image_id).updated_at = utcnow()
    session.commit()
    second = claim(session)["claims"][0]
    assert second["token"] != first["token"]
    with pytest.raises(Conflict, match="lost"):
        scrubbing.finish(session, image_id, first["token"], [first["locations"][0]["id"]])
    session.rollback()
    assert scrubbing.finish(session, image_id, second["token"], [second["locations"][0]["id"]])


def test_the_cursor_walks_past_claims_taken_elsewhere(session, stored):
    ids = [pending(session, stored) for _ in range(3)]
    first = claim(session, limit=2)
    taken = [c["image_id"] for c in first["claims"]]
    assert len(taken) == 2 and first["next"][1] == taken[-1]
    rest = claim(session, limit=2, after=first["next"])
    assert [c["image_id"] for c in rest["claims"]] == sorted(set(ids) - set(taken))
    assert claim(session, limit=2, after=rest["next"]) == {"claims": [], "next": None}


def test_finish_deletes_the_image_once_every_location_is_scrubbed(session, stored):
    image_id = pending(session, stored, locations=2)
    held = claim(session)["claims"][0]
    first, second = (loc["id"] for loc in held["locations"])
    assert not scrubbing.finish(session, image_id, held["token"], [first])
    session.commit()
    assert row(session, image_id).status == "pending_delete"
    assert location_statuses(session, image_id) == ["deleted", "pending_delete"]
    again = claim(session)["claims"][0]  # released for the next run, which resumes
    assert [loc["id"] for loc in again["locations"]] == [second]
    assert scrubbing.finish(session, image_id, again["token"], [second])
    session.commit()
    image = row(session, image_id)
    assert (image.status, image.deleted) == ("deleted", True)
    assert image.properties == [] and image.tags == []
    assert claim(session) == {"claims": [], "next": None}


def test_renewing_a_claim_changes_its_token(session, stored):
    image_id = pending(session, stored)
    held = claim(session)["claims"][0]
    token = scrubbing.renew_claim(session, image_id, held["token"], LEASE)
    session.commit()
    with pytest.raises(Conflict):
        scrubbing.renew_claim(session, image_id, held["token"], LEASE)
    assert scrubbing.finish(session, image_id, token, [held["locations"][0]["id"]])


def test_restore_brings_the_image_back_whole(session, stored):
    image_id = pending(session, stored)
    scrubbing.restore(session, image_id)
    session.commit()
    image = images.get_visible(session, OWNER, image_id)
    assert (image.status, image.deleted, image.deleted_at) == ("active", False, None)
    assert [p.name for p in image.properties] == ["os_distro"]
    assert location_statuses(session, image_id) == ["active"]


def test_restore_refuses_other_statuses_unknown_and_claimed_images(session, stored):
    with pytest.raises(NotFound):
        scrubbing.restore(session, str(uuid.uuid4()))
    with pytest.raises(Conflict, match="from active to active"):
        scrubbing.restore(session, stored())
    image_id = pending(session, stored)
    claim(session)
    with pytest.raises(Conflict, match="being scrubbed"):
        scrubbing.restore(session, image_id)
