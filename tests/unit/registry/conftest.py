"""Registry domain fixtures: a fresh in-memory SQLite database per test, request contexts
and data builders."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from services.common.config import load_config
from services.common.context import RequestContext
from services.common.contracts import Filter, ListQuery, NewImage
from services.registry import images, listing
from services.registry.models import Base, ImageMember, utcnow
from tests.unit.registry.builders import OWNER


@pytest.fixture
def conf():
    return load_config([])


@pytest.fixture
def session():
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture
def make_image(session, conf):
    """Create an image as ``ctx`` (OWNER by default) and commit it."""

    def make(
        ctx: RequestContext = OWNER,
        *,
        properties: dict | None = None,
        tags: tuple[str, ...] = (),
        **attributes,
    ):
        new = NewImage(attributes, dict(properties or {}), list(tags))
        image = images.create_image(session, ctx, conf, new)
        session.commit()
        return image

    return make


@pytest.fixture
def share(session):
    """Share an image with a project (an image_members row, as the members API makes)."""

    def add(image_id: str, project_id: str, status: str = "accepted") -> None:
        session.add(
            ImageMember(image_id=image_id, member=project_id, status=status, created_at=utcnow())
        )
        session.commit()

    return add


@pytest.fixture
def list_page(session, conf):
    """One page of images as ``ctx`` sees it for a list query (Glance's defaults:
    25 images, newest first)."""

    def page(ctx: RequestContext, *filters: Filter, **fields):
        fields.setdefault("limit", 25)
        fields.setdefault("sort", [["created_at", "desc"]])
        query = ListQuery(filters=list(filters), **fields)
        query.check()
        return listing.list_images(session, ctx, query)

    return page
