"""Image records against a real SQLite database (services/registry/images.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, update

from services.common.context import RequestContext
from services.common.contracts import ImageChange
from services.common.errors import (
    Conflict,
    Duplicate,
    Forbidden,
    InvalidTransition,
    NotFound,
    QuotaExceeded,
)
from services.registry import images, locations
from services.registry.models import Image, ImageMember, ImageProperty, ImageTag
from services.registry.views import orm_record
from tests.unit.registry.builders import ADMIN, OTHER, OWNER, V20, patch

IMAGE_ID = "7b0c2d4e-3f1a-4b5c-8d9e-0a1b2c3d4e5f"


def reload(session, image_id, ctx=OWNER) -> Image:
    """The image as the next request sees it (after this one committed)."""
    session.commit()
    return images.get_visible(session, ctx, image_id)


def properties_of(image: Image) -> dict:
    return {p.name: p.value for p in image.properties}


def tags_of(image: Image) -> list[str]:
    return sorted(t.value for t in image.tags)


# --- create ---


def test_create_defaults_to_a_shared_queued_image_of_the_callers_project(session, make_image):
    image = reload(session, make_image(name="cirros").id)
    assert (image.name, image.status, image.visibility, image.owner) == (
        "cirros",
        "queued",
        "shared",
        "p-owner",
    )
    assert (image.protected, image.os_hidden, image.min_ram, image.min_disk) == (False, False, 0, 0)
    assert image.deleted is False


def test_create_stores_properties_and_unique_tags(session, make_image):
    image = make_image(properties={"os_distro": "ubuntu"}, tags=("b", "a", "b"))
    image = reload(session, image.id)
    assert properties_of(image) == {"os_distro": "ubuntu"}
    assert tags_of(image) == ["a", "b"]


def test_create_with_an_existing_id_is_a_duplicate(make_image):
    make_image(id=IMAGE_ID)
    with pytest.raises(Duplicate):
        make_image(OTHER, id=IMAGE_ID)


def test_only_admins_create_public_images(make_image):
    with pytest.raises(Forbidden):
        make_image(visibility="public")
    assert make_image(ADMIN, visibility="public").visibility == "public"
    assert make_image(visibility="community").visibility == "community"


def test_non_admin_may_not_create_images_for_another_project(make_image):
    with pytest.raises(Forbidden):
        make_image(owner="p-other")
    assert make_image(ADMIN, owner="p-other").owner == "p-other"


def test_property_quota_on_create(conf, make_image):
    conf.set_override("image_property_quota", 2)
    make_image(properties={"a": "1", "b": "2"})
    with pytest.raises(QuotaExceeded, match="Attempted: 3, Maximum: 2"):
        make_image(properties={"a": "1", "b": "2", "c": "3"})


def test_tag_quota_on_create_counts_unique_tags(conf, make_image):
    conf.set_override("image_tag_quota", 2)
    assert len(make_image(tags=("a", "b", "a")).tags) == 2
    with pytest.raises(QuotaExceeded):
        make_image(tags=("a", "b", "c"))


# --- get_visible (the ORM image, for changes) and get_visible_record (for reads) ---


@pytest.fixture(params=["get_visible", "get_visible_record"])
def get(request, session):
    """Both lookups apply the same visibility rules."""
    lookup = getattr(images, request.param)

    def get_image(ctx, image_id):
        found = lookup(session, ctx, image_id)
        return SimpleNamespace(**found) if isinstance(found, dict) else found

    return get_image


def test_unknown_image_is_not_found(get):
    with pytest.raises(NotFound):
        get(OWNER, IMAGE_ID)


@pytest.mark.parametrize("visibility", ["private", "shared"])
def test_other_projects_do_not_see_private_or_unshared_images(get, make_image, visibility):
    image = make_image(visibility=visibility)
    with pytest.raises(NotFound):
        get(OTHER, image.id)
    assert get(ADMIN, image.id).id == image.id


@pytest.mark.parametrize("visibility", ["public", "community"])
def test_everyone_sees_public_and_community_images(get, make_image, visibility):
    image = make_image(ADMIN, visibility=visibility)
    assert get(OTHER, image.id).id == image.id


@pytest.mark.parametrize("member_status", ["pending", "accepted", "rejected"])
def test_shared_image_is_visible_to_members_only(get, make_image, share, member_status):
    image = make_image(visibility="shared")
    share(image.id, OTHER.project_id, member_status)
    assert get(OTHER, image.id).id == image.id
    with pytest.raises(NotFound):
        get(RequestContext(project_id="p-third"), image.id)


def test_private_image_is_hidden_even_from_members(get, make_image, share):
    image = make_image(visibility="private")
    share(image.id, OTHER.project_id)
    with pytest.raises(NotFound):
        get(OTHER, image.id)


# --- apply_changes ---


def apply(session, conf, image_id, *ops, ctx=OWNER, media=None):
    changes = patch(conf, *ops, **({"media": media} if media else {}))
    return images.apply_changes(session, ctx, conf, image_id, changes)[0]


def test_add_replace_remove_properties_and_attributes(session, conf, make_image):
    image = make_image(name="old", properties={"kernel_id": "k", "ramdisk_id": "r"})
    apply(
        session,
        conf,
        image.id,
        ("add", "/os_distro", "ubuntu"),
        ("add", "/kernel_id", "k2"),
        ("replace", "/ramdisk_id", "r2"),
        ("replace", "/name", "new"),
        ("add", "/min_ram", 512),
        ("replace", "/tags", ["x", "y"]),
    )
    apply(session, conf, image.id, ("remove", "/kernel_id"))
    image = reload(session, image.id)
    assert properties_of(image) == {"ramdisk_id": "r2", "os_distro": "ubuntu"}
    assert (image.name, image.min_ram) == ("new", 512)
    assert tags_of(image) == ["x", "y"]


def test_changes_bump_updated_at(session, conf, make_image):
    image = make_image()
    before = image.updated_at
    apply(session, conf, image.id, ("add", "/os_distro", "ubuntu"))
    assert reload(session, image.id).updated_at > before


@pytest.mark.parametrize("path", ["/kernel_id", "/name"])
def test_v20_add_of_an_existing_property_is_a_conflict(session, conf, make_image, path):
    image = make_image(name="n", properties={"kernel_id": "k"})
    with pytest.raises(Conflict, match="already present"):
        apply(session, conf, image.id, ("add", path, "v"), media=V20)


def test_v20_add_of_a_new_property(session, conf, make_image):
    image = make_image()
    apply(session, conf, image.id, ("add", "/os_distro", "ubuntu"), media=V20)
    assert properties_of(reload(session, image.id)) == {"os_distro": "ubuntu"}


def test_replace_of_a_missing_property_is_a_conflict(session, conf, make_image):
    image = make_image()
    with pytest.raises(Conflict, match="does not exist"):
        apply(session, conf, image.id, ("replace", "/os_distro", "ubuntu"))


def test_remove_of_a_missing_property_is_a_conflict(session, conf, make_image):
    image = make_image()
    with pytest.raises(Conflict, match="does not exist"):
        apply(session, conf, image.id, ("remove", "/os_distro"))


@pytest.mark.parametrize("path", ["/name", "/min_ram", "/tags", "/visibility"])
def test_base_attributes_may_not_be_removed(session, conf, make_image, path):
    image = make_image(name="n")
    with pytest.raises(Forbidden, match="may not be removed"):
        apply(session, conf, image.id, ("remove", path))


def test_only_the_owner_changes_an_image(session, conf, make_image):
    image = make_image(ADMIN, visibility="public", owner=OWNER.project_id)
    with pytest.raises(Forbidden):
        apply(session, conf, image.id, ("replace", "/name", "x"), ctx=OTHER)
    private = make_image(visibility="private")
    with pytest.raises(NotFound):
        apply(session, conf, private.id, ("replace", "/name", "x"), ctx=OTHER)


def test_non_admin_may_not_publicize_by_patch(session, conf, make_image):
    image = make_image()
    with pytest.raises(Forbidden):
        apply(session, conf, image.id, ("replace", "/visibility", "public"))
    apply(session, conf, image.id, ("replace", "/visibility", "public"), ctx=ADMIN)
    assert reload(session, image.id).visibility == "public"


def test_property_quota_on_patch(session, conf, make_image):
    conf.set_override("image_property_quota", 1)
    image = make_image(properties={"a": "1"})
    with pytest.raises(QuotaExceeded):
        apply(session, conf, image.id, ("add", "/b", "2"))
    apply(session, conf, image.id, ("remove", "/a"), ("add", "/b", "2"))
    assert properties_of(reload(session, image.id)) == {"b": "2"}


def test_remove_then_add_of_the_same_property_in_one_patch(session, conf, make_image):
    image = make_image(properties={"os_distro": "debian"})
    apply(session, conf, image.id, ("remove", "/os_distro"), ("add", "/os_distro", "ubuntu"))
    assert properties_of(reload(session, image.id)) == {"os_distro": "ubuntu"}


def test_locations_cannot_be_patched_while_invisible(session, conf, make_image):
    image = make_image()
    with pytest.raises(Forbidden, match="locations"):
        apply(
            session,
            conf,
            image.id,
            ("add", "/locations/-", {"url": "http://example.com/x", "metadata": {}}),
        )


LOCATION = {
    "url": "http://example.com/x",
    "metadata": {},
    "validation_data": {"os_hash_algo": "sha512", "os_hash_value": "ab" * 64},
}


def add_location(conf, size=42):
    conf.set_override("show_multiple_locations", True)
    change = patch(conf, ("add", "/locations/-", LOCATION))[0]
    return [ImageChange(**{**change.to_wire(), "path": change.path, "size": size})]


def test_a_location_makes_a_queued_image_active(session, conf, make_image):
    image = make_image(disk_format="raw", container_format="bare")
    images.apply_changes(session, OWNER, conf, image.id, add_location(conf))
    image = reload(session, image.id)
    assert (image.status, image.size, image.os_hash_value) == ("active", 42, "ab" * 64)


def test_a_location_never_overwrites_a_concurrent_upload(session, conf, make_image, monkeypatch):
    """An upload that claimed the image (queued -> saving) between this request's read
    and its write wins: the location's queued -> active is a compare-and-set (409)."""
    image = make_image(disk_format="raw", container_format="bare")
    real = locations.change_locations

    def racing_upload(*args):
        result = real(*args)
        session.execute(
            update(Image)
            .where(Image.id == image.id)
            .values(status="saving")
            .execution_options(synchronize_session=False)
        )
        return result

    monkeypatch.setattr(locations, "change_locations", racing_upload)
    with pytest.raises(Conflict):
        images.apply_changes(session, OWNER, conf, image.id, add_location(conf))
    assert session.scalar(select(Image.status).where(Image.id == image.id)) == "saving"


# --- change_status ---


def status_of(session, image_id) -> str:
    session.expire_all()
    return session.scalar(select(Image.status).where(Image.id == image_id))


def test_change_status_moves_from_the_expected_status(session, make_image):
    image_id = make_image().id
    images.change_status(session, image_id, "queued", "saving")
    images.change_status(session, image_id, "saving", "active", size=42, checksum="c" * 32)
    session.commit()
    image = reload(session, image_id)
    assert (image.status, image.size, image.checksum) == ("active", 42, "c" * 32)


def test_change_status_from_a_stale_status_is_a_conflict(session, make_image):
    image_id = make_image().id
    with pytest.raises(Conflict, match="no longer saving"):
        images.change_status(session, image_id, "saving", "active")
    assert status_of(session, image_id) == "queued"


def test_change_status_of_an_unknown_image_is_a_conflict(session):
    with pytest.raises(Conflict):
        images.change_status(session, IMAGE_ID, "queued", "saving")


def test_change_status_refuses_transitions_the_machine_forbids(session, make_image):
    image_id = make_image().id
    with pytest.raises(InvalidTransition):
        images.change_status(session, image_id, "queued", "killed")
    assert status_of(session, image_id) == "queued"


# --- delete ---


def count(session, model, image_id) -> int:
    return session.scalar(select(func.count()).select_from(model).where(model.image_id == image_id))


def test_protected_image_cannot_be_deleted(session, conf, make_image):
    image_id = make_image(protected=True).id
    with pytest.raises(Forbidden, match="protected"):
        images.delete_image(session, OWNER, image_id)
    assert reload(session, image_id).status == "queued"


def test_delete_hides_the_image_and_removes_its_rows(session, conf, make_image, share):
    image_id = make_image(protected=True, properties={"a": "1"}, tags=("t",)).id
    share(image_id, OTHER.project_id)
    apply(session, conf, image_id, ("replace", "/protected", False))
    images.delete_image(session, OWNER, image_id)
    session.commit()
    for lookup in (images.get_visible, images.get_visible_record):
        with pytest.raises(NotFound):
            lookup(session, OWNER, image_id)
    row = session.get(Image, image_id)
    assert (row.status, row.deleted, row.deleted_at is not None) == ("deleted", True, True)
    assert [count(session, m, image_id) for m in (ImageProperty, ImageTag, ImageMember)] == [
        0,
        0,
        0,
    ]


def test_only_the_owner_deletes(session, make_image):
    image_id = make_image(ADMIN, visibility="community", owner=OWNER.project_id).id
    with pytest.raises(Forbidden):
        images.delete_image(session, OTHER, image_id)
    assert reload(session, image_id).status == "queued"


def test_deleted_id_cannot_be_reused(session, make_image):
    image_id = make_image(id=IMAGE_ID).id
    images.delete_image(session, OWNER, image_id)
    session.commit()
    with pytest.raises(Duplicate):
        make_image(id=IMAGE_ID)


@pytest.mark.parametrize("children", [False, True])
def test_the_one_query_read_gives_the_same_record_as_the_orm(session, conf, make_image, children):
    extra = {"properties": {"b": "2", "a": "1"}, "tags": ("y", "x")} if children else {}
    image = make_image(name="n", **extra)
    if children:
        images.apply_changes(session, OWNER, conf, image.id, add_location(conf))
        session.commit()
    record = images.get_visible_record(session, OWNER, image.id)
    assert record == orm_record(reload(session, image.id))
    assert bool(record["properties"] and record["tags"] and record["locations"]) is children
