"""Registry domain fixtures: a fresh in-memory SQLite database per test, request contexts
and data builders."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from services.api.list_params import parse_list_query
from services.common.config import load_config
from services.common.context import RequestContext
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
        image = images.create_image(
            session, ctx, conf, attributes, dict(properties or {}), list(tags)
        )
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
    """One page of images as ``ctx`` sees it for the given query parameters."""

    def page(ctx: RequestContext, *params: tuple[str, str]):
        query = parse_list_query(MultiDict(list(params)), conf)
        return listing.list_images(session, ctx, query)

    return page
