"""Property protections through the API (development auth: roles from X-Roles), in both
rule formats, on SQLite and MariaDB; a file that cannot be used stops the services at
start with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import Api
from tests.integration.test_images_api import error_of
from tests.stack import ROOT, Stack, write_config

# Members may read x_members_* but only admins change them; x_admin_* is admin-only;
# x_denied_* nobody may touch; members may write x_drop_* but not read it back; anything
# else is free.
ROLES_FILE = """
[^x_members_]
create = admin
read = admin,member
update = admin
delete = admin

[^x_admin_]
create = admin
read = admin
update = admin
delete = admin

[^x_denied_]
create = !
read = !
update = !
delete = !

[^x_drop_]
create = admin,member
read = admin
update = admin,member
delete = admin,member

[.*]
create = @
read = @
update = @
delete = @
"""

# The same in the policies format, with the rules defined in the policy file.
POLICIES_FILE = """
[^x_members_]
create = pp_admin
read = pp_member
update = pp_admin
delete = pp_admin

[^x_admin_]
create = pp_admin
read = pp_admin
update = pp_admin
delete = pp_admin

[^x_denied_]
create = !
read = !
update = !
delete = !

[^x_drop_]
create = pp_member
read = pp_admin
update = pp_member
delete = pp_member

[.*]
create = @
read = @
update = @
delete = @
"""
POLICY_FILE = '"pp_admin": "role:admin"\n"pp_member": "role:member or rule:pp_admin"\n'


def _start(workdir, mysql, rule_format):
    text = ROLES_FILE if rule_format == "roles" else POLICIES_FILE
    (workdir / "protections.conf").write_text(text)
    sections = {}
    if rule_format == "policies":
        (workdir / "policy.yaml").write_text(POLICY_FILE)
        sections["oslo_policy"] = {"policy_file": workdir / "policy.yaml"}
    return Stack(
        workdir,
        mysql=mysql,
        sections=sections,
        # relative: looked for beside the config file, as Glance's find_file
        property_protection_file="protections.conf",
        property_protection_rule_format=rule_format,
    ).start()


# Both formats on both databases, as the issue asks of every case.
@pytest.fixture(
    scope="module",
    params=[(f, db) for f in ("roles", "policies") for db in ("sqlite", "mysql")],
    ids=lambda p: "-".join(p),
)
def protected(request, tmp_path_factory):
    rule_format, db = request.param
    stack = _start(tmp_path_factory.mktemp(f"pp-{rule_format}-{db}"), db == "mysql", rule_format)
    yield stack
    stack.cleanup()


@pytest.fixture
def apis(protected):
    """An admin, a member and a reader of one fresh project."""
    project = f"pp-{os.urandom(4).hex()}"
    return (
        Api(protected.url, project=project, roles="admin"),
        Api(protected.url, project=project, roles="member"),
        Api(protected.url, project=project, roles="reader"),
    )


PROPS = {"x_members_a": "m", "x_admin_b": "a", "x_drop_c": "d", "plain": "p"}


def props_of(body: dict) -> dict:
    return {k: v for k, v in body.items() if k.startswith(("x_", "plain"))}


def test_hidden_from_readers_who_may_not_read_them(apis):
    admin, member, reader = apis
    image = admin.create(name="protected", **PROPS)
    assert props_of(image) == PROPS
    show = member.get(f"/v2/images/{image['id']}").json()
    assert props_of(show) == {"x_members_a": "m", "plain": "p"}
    listed = {i["id"]: i for i in member.get("/v2/images?limit=100").json()["images"]}
    assert props_of(listed[image["id"]]) == {"x_members_a": "m", "plain": "p"}
    # a reader (no member role) reads only the free ones
    assert props_of(reader.get(f"/v2/images/{image['id']}").json()) == {"plain": "p"}
    assert props_of(admin.get(f"/v2/images/{image['id']}").json()) == PROPS


def test_create_of_a_protected_property_is_403(apis):
    admin, member, _ = apis
    for name in ("x_members_a", "x_admin_b", "x_denied_z"):
        message = error_of(member.post("/v2/images", json={"name": "n", name: "v"}), 403)
        assert message == f"Attribute '{name}' is reserved."
    assert error_of(admin.post("/v2/images", json={"x_denied_z": "v"}), 403) == (
        "Attribute 'x_denied_z' is reserved."
    )
    # a member may create x_drop_* but the create response does not show it back
    image = member.create(name="dropbox", x_drop_c="secret", plain="p")
    assert props_of(image) == {"plain": "p"}
    assert admin.get(f"/v2/images/{image['id']}").json()["x_drop_c"] == "secret"


def test_update_and_delete_as_glance_answers(apis):
    admin, member, _ = apis
    image = admin.create(name="protected", **PROPS)
    path = f"/v2/images/{image['id']}"

    def patch(api, *ops, media="application/openstack-images-v2.1-json-patch"):
        changes = [dict(zip(("op", "path", "value"), op, strict=False)) for op in ops]
        return api.patch(path, changes, media=media)

    # readable but not writable: 403 for replace, add and remove
    for op in (("replace", "/x_members_a", "x"), ("add", "/x_members_a", "x")):
        assert error_of(patch(member, op), 403) == "Attribute 'x_members_a' is reserved."
    assert error_of(patch(member, ("remove", "/x_members_a")), 403) == (
        "Attribute 'x_members_a' is reserved."
    )
    # not readable: does not exist for the caller (409); an add is a create (403 here)
    for op in (("replace", "/x_admin_b", "x"), ("remove", "/x_admin_b")):
        assert error_of(patch(member, op), 409) == "Property x_admin_b does not exist."
    assert error_of(patch(member, ("add", "/x_admin_b", "x")), 403) == (
        "Attribute 'x_admin_b' is reserved."
    )
    assert error_of(patch(admin, ("add", "/x_denied_z", "x")), 403) == (
        "Attribute 'x_denied_z' is reserved."
    )
    # a member's change of something else: the PATCH response hides what it may not
    # read, and the hidden properties are kept (Glance 33 deletes them, and answers 500
    # to the add of x_drop_c: README "Property protections")
    resp = patch(member, ("replace", "/name", "renamed"), ("add", "/x_drop_c", "new"))
    assert resp.status_code == 200, resp.text
    assert props_of(resp.json()) == {"x_members_a": "m", "plain": "p"}
    assert props_of(admin.get(path).json()) == {**PROPS, "x_drop_c": "new"}
    # an admin may
    resp = patch(admin, ("replace", "/x_members_a", "m2"), ("remove", "/x_admin_b"))
    assert resp.status_code == 200, resp.text
    assert props_of(resp.json()) == {"x_members_a": "m2", "x_drop_c": "new", "plain": "p"}


# (every kind of unusable file is in tests/unit/common/test_property_protections.py)
CANNOT_START = {
    "tessera-run": (["-m", "services.stack"], None),
    "tessera-registry": (["-m", "services.launch", "registry"], "[x_(]\ncreate = @\n"),
    "tessera-store": (["-m", "services.launch", "store"], "[x_a]\ncreate = @\n"),
    "tessera-api": (["-m", "services.api.server"], "[x_a]\ncreate = a,b\n"),
}
MESSAGES = {
    "tessera-run": "cannot read the property protection file",
    "tessera-registry": "is not a valid regular expression",
    "tessera-store": "section [x_a] has no 'read'",
    "tessera-api": "one policy rule per operation",
}


def test_a_file_that_cannot_be_used_stops_every_service_at_start(tmp_path):
    """tessera-run before it starts anything, and each service on its own (as
    docker-compose runs them): exit status 1 and one line, no traceback."""
    for prog, (args, text) in CANNOT_START.items():
        path = tmp_path / f"{prog}.pp.conf"
        if text is not None:
            path.write_text(text)
        config = write_config(
            tmp_path / f"{prog}.conf",
            DEFAULT={
                "property_protection_file": path,
                "property_protection_rule_format": "policies" if prog == "tessera-api" else "roles",
                "data_dir": tmp_path / "data",
                # nothing listens here: the check comes before the broker's
                "transport_url": "rabbit://guest:guest@127.0.0.1:1/",
            },
        )
        done = subprocess.run(
            [sys.executable, *args, "--config-file", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, (prog, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), (prog, done.stderr)
        assert MESSAGES[prog] in lines[0] and "Traceback" not in done.stderr, lines
