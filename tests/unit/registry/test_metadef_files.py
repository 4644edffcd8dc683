"""``tessera-manage db load_metadefs / export_metadefs / unload_metadefs`` semantics
(glance-manage's) on an in-memory database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from services.registry.metadefs import files
from services.registry.metadefs.models import (
    MetadefNamespace,
    MetadefProperty,
    MetadefResourceType,
    MetadefTag,
)
from services.registry.models import Base

DOC = {
    "namespace": "NS::One",
    "display_name": "NS One!",
    "visibility": "public",
    "protected": True,
    "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "one_"}],
    "properties": {"p": {"title": "P", "type": "string"}},
    "objects": [{"name": "O", "properties": {"q": {"title": "Q", "type": "integer"}}}],
    "tags": [{"name": "t"}],
}


@pytest.fixture
def sessions():
    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )

    @event.listens_for(engine, "connect")
    def _foreign_keys(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def write(path, document):
    path.write_text(json.dumps(document))
    return path


def count(sessions, model) -> int:
    with sessions.begin() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_load_then_export_gives_the_same_json(sessions, tmp_path):
    write(tmp_path / "one.json", DOC)
    (tmp_path / "broken.json").write_text("{not json")
    assert files.load(sessions, tmp_path) == ["NS::One"]
    with sessions.begin() as session:
        rt = session.scalar(select(MetadefResourceType))
        assert rt.protected  # seeded system types are protected
        assert session.scalar(select(MetadefNamespace)).owner == "admin"
    written = files.export(sessions, tmp_path / "out")
    assert [p.name for p in written] == ["NSOne.json"]
    assert json.loads(written[0].read_text()) == DOC


def test_existing_namespaces_are_skipped_merged_or_replaced(sessions, tmp_path):
    source = write(tmp_path / "one.json", DOC)
    files.load(sessions, source)
    changed = {
        **DOC,
        "properties": {
            "p": {"title": "New", "type": "string"},
            "r": {"title": "R", "type": "boolean"},
        },
        "tags": [{"name": "u"}],
    }  # noqa: E501
    write(source, changed)

    assert files.load(sessions, source) == []  # already there: skipped
    assert count(sessions, MetadefProperty) == 1

    files.load(sessions, source, merge=True)  # new items added, existing ones kept
    with sessions.begin() as session:
        p = session.scalar(select(MetadefProperty).where(MetadefProperty.name == "p"))
        assert json.loads(p.json_schema)["title"] == "P"
    assert count(sessions, MetadefProperty) == 2 and count(sessions, MetadefTag) == 2

    files.load(sessions, source, merge=True, prefer_new=True)  # the file wins
    with sessions.begin() as session:
        p = session.scalar(select(MetadefProperty).where(MetadefProperty.name == "p"))
        assert json.loads(p.json_schema)["title"] == "New"

    files.load(sessions, source, merge=True, overwrite=True)  # replaced as a whole
    assert count(sessions, MetadefTag) == 1

    files.unload(sessions)
    assert count(sessions, MetadefNamespace) == 0 and count(sessions, MetadefResourceType) == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefer_new": True}, "--merge"),
        ({"overwrite": True}, "--merge"),
        ({"merge": True, "prefer_new": True, "overwrite": True}, "no more than one"),
    ],
)
def test_option_combinations_glance_refuses(sessions, tmp_path, options, message):
    write(tmp_path / "one.json", DOC)
    with pytest.raises(files.LoadError, match=message):
        files.load(sessions, tmp_path, **options)


def test_a_directory_without_definitions(sessions, tmp_path):
    with pytest.raises(files.LoadError, match="Json schema files not found"):
        files.load(sessions, tmp_path)
