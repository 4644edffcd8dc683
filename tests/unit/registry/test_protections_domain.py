"""Property protections in the registry's create and change (services/registry/images.py,
services/registry/protections.py), with Glance's answers: 403 ``Attribute 'x' is
reserved.``, and a property the caller cannot read that does not exist for it."""

from __future__ import annotations

import pytest

from services.common.context import RequestContext
from services.common.contracts import NewImage
from services.common.errors import Conflict, Forbidden
from services.common.property_protections import PropertyRules
from services.registry import images
from tests.unit.registry.builders import OWNER, V20, patch

# an admin of the owner's project
ADMIN = RequestContext(project_id=OWNER.project_id, roles=("admin", "member"), is_admin=True)

RULES = PropertyRules.parse(
    """
[^x_ro_]
create = admin
read = admin,member
update = admin
delete = admin

[^x_secret_]
create = admin,member
read = admin
update = admin
delete = admin

[^x_nodelete_]
create = admin,member
read = admin,member
update = admin,member
delete = admin

[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""
)


@pytest.fixture
def image(session, conf):
    new = NewImage({}, {"x_ro_a": "1", "x_secret_b": "2", "x_nodelete_c": "3"}, [])
    made = images.create_image(session, ADMIN, conf, new, RULES)
    session.commit()
    return made


def apply(session, conf, image_id, *ops, ctx=OWNER, media=None):
    changes = patch(conf, *ops, **({"media": media} if media else {}))
    image = images.apply_changes(session, ctx, conf, image_id, changes, RULES)[0]
    session.commit()
    return {p.name: p.value for p in image.properties}


def test_create_needs_create_on_every_property(session, conf):
    new = NewImage({}, {"plain": "p", "x_ro_a": "1"}, [])
    with pytest.raises(Forbidden, match=r"^Attribute 'x_ro_a' is reserved\.$"):
        images.create_image(session, OWNER, conf, new, RULES)
    images.create_image(session, OWNER, conf, NewImage({}, {"x_secret_b": "2"}, []), RULES)


def test_update_and_delete_of_a_readable_property_need_their_permission(session, conf, image):
    for op in (("replace", "/x_ro_a", "9"), ("add", "/x_ro_a", "9"), ("remove", "/x_ro_a")):
        with pytest.raises(Forbidden, match="Attribute 'x_ro_a' is reserved."):
            apply(session, conf, image.id, op)
    # a 'remove' of one the caller may update but not delete is a 403 too
    assert apply(session, conf, image.id, ("replace", "/x_nodelete_c", "4"))["x_nodelete_c"] == "4"
    with pytest.raises(Forbidden, match="Attribute 'x_nodelete_c' is reserved."):
        apply(session, conf, image.id, ("remove", "/x_nodelete_c"))
    props = apply(session, conf, image.id, ("remove", "/x_nodelete_c"), ctx=ADMIN)
    assert "x_nodelete_c" not in props


def test_a_property_the_caller_cannot_read_does_not_exist_for_it(session, conf, image):
    with pytest.raises(Conflict, match=r"^Property x_secret_b does not exist\.$"):
        apply(session, conf, image.id, ("replace", "/x_secret_b", "9"))
    with pytest.raises(Conflict, match=r"^Property x_secret_b does not exist\.$"):
        apply(session, conf, image.id, ("remove", "/x_secret_b"))
    # an 'add' of it is a create (members may create x_secret_*), even in the v2.0 media
    # type where an 'add' of a present property is a conflict: what Glance 33's proxy
    # means (its save then fails with a KeyError, a 500; README "Property protections")
    assert (
        apply(session, conf, image.id, ("add", "/x_secret_b", "new"), media=V20)["x_secret_b"]
        == "new"
    )


def test_changing_other_things_keeps_the_properties_the_caller_cannot_read(session, conf, image):
    props = apply(session, conf, image.id, ("replace", "/name", "n"), ("add", "/plain", "p"))
    assert props == {"x_ro_a": "1", "x_secret_b": "2", "x_nodelete_c": "3", "plain": "p"}
