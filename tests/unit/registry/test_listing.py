"""The image list against a real SQLite database (services/registry/listing.py); queries
are built with the gateway's parser so the two stay in step."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.common.contracts import Filter
from services.common.errors import BadRequest
from services.registry import images
from tests.unit.registry.builders import ADMIN, OTHER, OWNER

ZOO = {
    "own-private",
    "own-shared",
    "own-community",
    "public",
    "other-private",
    "other-community",
    "other-unshared",
    "shared-accepted",
    "shared-pending",
    "shared-rejected",
    "other-private-member",
}


def names(page) -> set[str]:
    images, _more = page
    return {i.name for i in images}


@pytest.fixture
def visibility_zoo(make_image, share):
    """One image per visibility case, named for how OWNER relates to it."""
    make_image(name="own-private", visibility="private")
    make_image(name="own-shared", visibility="shared")
    make_image(name="own-community", visibility="community")
    make_image(ADMIN, name="public", visibility="public")
    make_image(OTHER, name="other-private", visibility="private")
    make_image(OTHER, name="other-community", visibility="community")
    make_image(OTHER, name="other-unshared", visibility="shared")
    for status in ("accepted", "pending", "rejected"):
        share(
            make_image(OTHER, name=f"shared-{status}", visibility="shared").id,
            OWNER.project_id,
            status,
        )
    private_share = make_image(OTHER, name="other-private-member", visibility="private")
    share(private_share.id, OWNER.project_id, "accepted")


def test_default_list_is_own_public_and_accepted_shares(visibility_zoo, list_page):
    assert names(list_page(OWNER)) == {
        "own-private",
        "own-shared",
        "own-community",
        "public",
        "shared-accepted",
    }


@pytest.mark.parametrize(
    ("member_status", "shares"),
    [
        ("pending", {"shared-pending"}),
        ("rejected", {"shared-rejected"}),
        ("all", {"shared-accepted", "shared-pending", "shared-rejected"}),
    ],
)
def test_member_status_picks_the_shares_listed(visibility_zoo, list_page, member_status, shares):
    listed = names(list_page(OWNER, member_status=member_status))
    assert {n for n in listed if n.startswith("shared-")} == shares
    assert {"own-private", "public"} <= listed


@pytest.mark.parametrize(
    ("visibility", "expected"),
    [
        ("public", {"public"}),
        ("community", {"own-community", "other-community"}),
        ("private", {"own-private"}),
        ("shared", {"own-shared", "shared-accepted"}),
        (
            "all",
            {
                "own-private",
                "own-shared",
                "own-community",
                "public",
                "other-community",
                "shared-accepted",
            },
        ),
    ],
)
def test_visibility_filter_for_a_project(visibility_zoo, list_page, visibility, expected):
    assert names(list_page(OWNER, visibility=visibility)) == expected


def test_admin_lists_every_visibility_with_all(visibility_zoo, list_page):
    assert names(list_page(ADMIN, visibility="all")) == ZOO


def test_admin_default_list_leaves_out_others_community_images(visibility_zoo, list_page):
    listed = names(list_page(ADMIN))
    assert "other-community" not in listed and "own-community" not in listed
    assert {"own-private", "other-private", "public", "shared-pending"} <= listed


def test_deleted_images_are_not_listed(session, make_image, list_page):
    images.delete_image(session, OWNER, make_image(name="gone").id)
    make_image(name="kept")
    session.commit()
    assert names(list_page(OWNER)) == {"kept"}


def test_hidden_images_are_listed_only_on_request(make_image, list_page):
    make_image(name="shown")
    make_image(name="hidden", os_hidden=True)
    assert names(list_page(OWNER)) == {"shown"}
    assert names(list_page(OWNER, os_hidden=True)) == {"hidden"}


# --- sorting and keyset pagination ---


@pytest.fixture
def named_images(make_image):
    """Images with repeated and missing names, so sorting needs its tie-breakers."""
    return [make_image(name=n) for n in ("b", "a", None, "c", "a", "b", "a", None, "d")]


def all_pages(list_page, limit=2, max_pages=50, **fields) -> list:
    """Follow ``marker`` from page to page (as clients follow ``next``) to the end."""
    seen, marker = [], None
    for _ in range(max_pages):
        page, more = list_page(OWNER, limit=limit, marker=marker, **fields)
        seen.extend(page)
        if not more:
            return seen
        assert page, "a page that says more follow must not be empty"
        marker = page[-1].id
    raise AssertionError(f"pagination did not end after {max_pages} pages")


def test_sort_by_name_ascending_breaks_ties_by_created_at_then_id(named_images, list_page):
    page, more = list_page(OWNER, sort=[["name", "asc"]])
    expected = sorted(named_images, key=lambda i: (i.name or "", i.created_at, i.id))
    assert [i.id for i in page] == [i.id for i in expected]
    assert more is False


@pytest.mark.parametrize(
    "sort",
    [
        [["name", "asc"]],
        [["name", "desc"], ["id", "asc"]],
        [["created_at", "desc"]],
    ],
)
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_pages_return_every_image_exactly_once_in_order(named_images, list_page, sort, limit):
    one_page, _ = list_page(OWNER, sort=sort)
    paged = all_pages(list_page, limit=limit, sort=sort)
    assert [i.id for i in paged] == [i.id for i in one_page]
    assert sorted(i.id for i in paged) == sorted(i.id for i in named_images)


def test_limit_and_more(named_images, list_page):
    page, more = list_page(OWNER, limit=3)
    assert (len(page), more) == (3, True)
    page, more = list_page(OWNER, limit=len(named_images))
    assert (len(page), more) == (len(named_images), False)


def test_marker_the_caller_cannot_see_is_bad_request(make_image, list_page):
    hidden = make_image(OTHER, visibility="private")
    with pytest.raises(BadRequest, match="marker"):
        list_page(OWNER, marker=hidden.id)
    with pytest.raises(BadRequest, match="marker"):
        list_page(OWNER, marker="00000000-0000-0000-0000-000000000000")


# --- filters ---


def test_property_filters_must_all_match(make_image, list_page):
    make_image(name="jammy", properties={"os_distro": "ubuntu", "os_version": "22.04"})
    make_image(name="noble", properties={"os_distro": "ubuntu", "os_version": "24.04"})
    make_image(name="bookworm", properties={"os_distro": "debian", "os_version": "12"})
    make_image(name="bare")
    assert names(list_page(OWNER, properties={"os_distro": "ubuntu"})) == {"jammy", "noble"}
    assert names(list_page(OWNER, properties={"os_distro": "ubuntu", "os_version": "24.04"})) == {
        "noble"
    }
    assert names(list_page(OWNER, properties={"os_distro": "fedora"})) == set()


def test_tag_filters_must_all_match(make_image, list_page):
    make_image(name="ab", tags=("a", "b"))
    make_image(name="a", tags=("a",))
    make_image(name="none")
    assert names(list_page(OWNER, tags=["a"])) == {"ab", "a"}
    assert names(list_page(OWNER, tags=["a", "b"])) == {"ab"}


def test_field_filters(make_image, list_page):
    make_image(name="a,b", disk_format="raw")
    make_image(name="c", disk_format="qcow2", protected=True)
    make_image(name="d", disk_format="qcow2")
    assert names(list_page(OWNER, Filter("name", "in", ["a,b", "c"]))) == {"a,b", "c"}
    assert names(list_page(OWNER, Filter("disk_format", "eq", "qcow2"))) == {"c", "d"}
    assert names(list_page(OWNER, Filter("protected", "eq", True))) == {"c"}


def test_size_filters(session, make_image, list_page):
    for name, size in (("small", 10), ("medium", 100), ("large", 1000)):
        make_image(name=name).size = size
    make_image(name="empty")
    session.commit()
    assert names(list_page(OWNER, Filter("size", "gte", 100))) == {"medium", "large"}
    assert names(list_page(OWNER, Filter("size", "gte", 50), Filter("size", "lte", 500))) == {
        "medium"
    }


def test_created_at_filter(session, make_image, list_page):
    old, new = make_image(name="old"), make_image(name="new")
    old.created_at, new.created_at = datetime(2020, 1, 1), datetime(2026, 1, 1)
    session.commit()
    assert names(list_page(OWNER, Filter("created_at", "lt", "2025-01-01T00:00:00Z"))) == {"old"}
    assert names(list_page(OWNER, Filter("created_at", "gte", "2026-01-01T00:00:00Z"))) == {"new"}
    assert names(list_page(OWNER, Filter("created_at", "neq", "2020-01-01T00:00:00Z"))) == {"new"}
