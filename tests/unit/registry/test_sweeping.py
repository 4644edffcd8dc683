"""The store sweep's claim and the image states it asks about, against a real SQLite
database (services/registry/sweeping.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from services.common.errors import Conflict
from services.registry import sweeping
from services.registry.models import ImageLocation, ImageUpload, Task, utcnow


def test_one_claim_at_a_time_then_due_after_the_interval(session):
    token = sweeping.claim(session, 60)
    assert token is not None
    session.commit()
    assert sweeping.claim(session, 60) is None  # held
    token = sweeping.renew(session, token, 60)
    sweeping.finish(session, token, 600)
    session.commit()
    assert sweeping.claim(session, 60) is None  # not due for 600 s
    with pytest.raises(Conflict):
        sweeping.renew(session, token, 60)  # finished: the claim is no longer held
    session.execute(
        update(Task)
        .where(Task.id == sweeping.SWEEP_ID)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert sweeping.claim(session, 60) is not None  # due (or its holder died)


def test_the_claim_row_is_no_live_task(session):
    sweeping.claim(session, 60)
    assert session.get(Task, sweeping.SWEEP_ID).deleted


def test_image_states(session, make_image):
    active, saving, queued = (make_image(name=n) for n in ("a", "s", "q"))
    now = utcnow()
    session.add(
        ImageLocation(
            image_id=active.id, value="file:///d/x", meta_data="{}", status="active", created_at=now
        )
    )
    session.add(
        ImageLocation(
            image_id=queued.id,
            value="file:///d/y",
            meta_data="{}",
            status="deleted",
            created_at=now,
        )
    )
    session.add(
        ImageUpload(
            image_id=saving.id, upload_id="u1", store="file", created_at=now, lease_expires_at=now
        )
    )
    session.commit()
    states = sweeping.image_states(session, [active.id, saving.id, queued.id, "unknown"])
    assert states[active.id]["locations"] == ["file:///d/x"]
    assert states[saving.id]["upload_id"] == "u1"
    assert states[queued.id] == {"status": "queued", "upload_id": None, "locations": []}
    assert "unknown" not in states
