"""python-glanceclient against the running stack, as an operator's script uses it."""

from __future__ import annotations

import uuid

import pytest
from glanceclient import Client
from glanceclient import exc as glance_exc


@pytest.fixture
def glance(stack):
    # Development auth: no Keystone; the token is accepted and ignored, the caller is an
    # admin of the development project.
    return Client(endpoint=f"{stack.url}/v2", token="development")


def test_create_list_show_update_tag_delete(glance):
    group = f"gc-{uuid.uuid4().hex[:8]}"
    created = [
        glance.images.create(
            name=f"{group}-{i}",
            disk_format="qcow2",
            container_format="bare",
            tags=[group],
            os_distro="cirros",
            visibility="private",
        )
        for i in range(5)
    ]
    assert all(img.status == "queued" for img in created)

    listed = list(glance.images.list(filters={"tag": [group]}, page_size=2))
    assert sorted(i.name for i in listed) == [f"{group}-{i}" for i in range(5)]
    filtered = list(glance.images.list(filters={"tag": [group], "name": f"{group}-3"}))
    assert [i.id for i in filtered] == [created[3].id]
    by_name = list(glance.images.list(filters={"tag": [group]}, sort="name:asc", page_size=2))
    assert [i.name for i in by_name] == [f"{group}-{i}" for i in range(5)]
    limited = list(glance.images.list(filters={"tag": [group]}, limit=3, page_size=2))
    assert len(limited) == 3

    image = glance.images.get(created[0].id)
    assert image.name == f"{group}-0" and image.os_distro == "cirros"

    updated = glance.images.update(
        image.id, name="renamed", hw_disk_bus="virtio", os_distro="ubuntu", min_ram=128
    )
    assert updated.name == "renamed" and updated.hw_disk_bus == "virtio"
    assert updated.os_distro == "ubuntu" and updated.min_ram == 128
    updated = glance.images.update(image.id, remove_props=["hw_disk_bus"])
    assert "hw_disk_bus" not in updated

    glance.image_tags.update(image.id, "extra")
    assert sorted(glance.images.get(image.id).tags) == sorted([group, "extra"])
    glance.image_tags.delete(image.id, "extra")
    assert glance.images.get(image.id).tags == [group]

    for img in created:
        glance.images.delete(img.id)
    with pytest.raises(glance_exc.HTTPNotFound):
        glance.images.get(image.id)
    assert list(glance.images.list(filters={"tag": [group]})) == []


def test_errors_reach_the_client_as_messages(glance):
    with pytest.raises(glance_exc.HTTPNotFound) as err:
        glance.images.get(str(uuid.uuid4()))
    assert "No image found" in str(err.value)
    image = glance.images.create(name="protected", protected=True)
    with pytest.raises(glance_exc.HTTPForbidden) as err:
        glance.images.delete(image.id)
    assert "protected" in str(err.value)
    glance.images.update(image.id, protected=False)
    glance.images.delete(image.id)
