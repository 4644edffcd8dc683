"""An operator's policy file with Glance's rule names overrides the defaults."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Api
from tests.integration.test_images_api import error_of
from tests.stack import Stack


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("policy")
    policy = workdir / "policy.yaml"
    policy.write_text('"add_image": "role:admin"\n"publicize_image": "role:member"\n')
    stack = Stack(workdir, sections={"oslo_policy": {"policy_file": policy}}).start()
    yield stack
    stack.cleanup()


def test_policy_file_overrides_glance_defaults(strict):
    member = Api(strict.url, project=f"pm-{os.urandom(4).hex()}", roles="member")
    admin = Api(strict.url, project=member.project, roles="admin")
    error_of(member.post("/v2/images", json={"name": "not allowed"}), 403)
    image = admin.create(name="allowed")
    # a member may now publicise (the default needs admin)
    resp = member.patch(
        f"/v2/images/{image['id']}", [{"op": "replace", "path": "/visibility", "value": "public"}]
    )
    assert resp.status_code == 200 and resp.json()["visibility"] == "public"
    # rules the file does not name keep Glance's defaults: a reader may not deactivate,
    # a member may (and gets as far as the status check: the image is still queued)
    reader = Api(strict.url, project=member.project, roles="reader")
    error_of(reader.post(f"/v2/images/{image['id']}/actions/deactivate"), 403)
    assert "queued" in error_of(member.post(f"/v2/images/{image['id']}/actions/deactivate"), 403)
