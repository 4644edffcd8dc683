"""Metadata definitions (``/v2/metadefs``) on SQLite and MariaDB: the glance CLI's md-*
commands, openstacksdk's metadef calls, who sees and may change what (two projects and
an admin), bad input, and ``tessera-manage db load_metadefs / export_metadefs /
unload_metadefs`` with small definition files.

The glance CLI runs in this process (glanceclient's own shell class, as the ``glance``
script runs it) so that its ~40 commands cost milliseconds, not an interpreter start
each; one command goes through the ``glance`` script itself."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import uuid

import pytest

from tests.conftest import Api
from tests.stack import ROOT


def glance_cli(stack, *args: str) -> tuple[int, str]:
    """(exit status, stdout or error text) of ``glance <args>`` against the stack (the
    caller is the development admin: no identity headers)."""
    from glanceclient import exc as glance_exc
    from glanceclient.shell import OpenStackImagesShell

    out = io.StringIO()
    argv = ["--os-image-url", stack.url, "--os-auth-token", "development", *args]
    with contextlib.redirect_stdout(out):
        try:
            OpenStackImagesShell().main(argv)
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue()
        except (glance_exc.BaseException, glance_exc.ClientException) as exc:
            # what the glance script prints before it exits 1
            return 1, str(exc)
    return 0, out.getvalue()


def ok(stack, *args: str) -> str:
    status, out = glance_cli(stack, *args)
    assert status == 0, (args, out)
    return out


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def error_of(resp, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text
    return resp.json()["error"]["message"]


@pytest.fixture
def admin(stack):
    return Api(stack.url, project=unique("md-admin"), roles="admin")


@pytest.fixture
def project_a(stack):
    return Api(stack.url, project=unique("md-a"))


@pytest.fixture
def project_b(stack):
    return Api(stack.url, project=unique("md-b"))


def test_glance_cli_md_commands(stack):
    ns = unique("cli")
    out = ok(stack, "md-namespace-create", ns, "--visibility", "public", "--description", "d1")
    assert ns in out and "public" in out
    assert ns in ok(stack, "md-namespace-list")
    ok(stack, "md-namespace-update", ns, "--description", "d2", "--display-name", "CLI")
    assert "d2" in ok(stack, "md-namespace-show", ns)

    prop = ["--title", "Disk bus", "--type", "string", "--schema", '{"enum": ["ide", "virtio"]}']
    ok(stack, "md-property-create", ns, "--name", "bus", *prop)
    shown = ok(stack, "md-property-show", ns, "bus")
    assert "virtio" in shown and "Disk bus" in shown
    ok(stack, "md-property-update", ns, "bus", "--name", "disk_bus", "--title", "Bus")
    assert "disk_bus" in ok(stack, "md-property-list", ns)
    status, out = glance_cli(stack, "md-property-show", ns, "bus")
    assert status == 1 and "Could not find property bus" in out

    schema = '{"description": "CPU", "properties": {"cores": {"type": "integer", "title": "C"}}}'
    ok(stack, "md-object-create", ns, "--name", "cpu", "--schema", schema)
    assert "cores" in ok(stack, "md-object-show", ns, "cpu")
    assert "integer" in ok(stack, "md-object-property-show", ns, "cpu", "cores")
    ok(stack, "md-object-update", ns, "cpu", "--name", "cpu2")
    assert "cpu2" in ok(stack, "md-object-list", ns)

    ok(stack, "md-tag-create-multiple", ns, "--names", "a,b", "--delim", ",")
    # (the CLI's --append fails in glanceclient itself: it sends the header as a bool;
    # test_lists_pages_and_resource_type_filter sends X-Openstack-Append)
    ok(stack, "md-tag-create", ns, "--name", "c")
    ok(stack, "md-tag-create", ns, "--name", "d")
    ok(stack, "md-tag-update", ns, "d", "--name", "e")
    assert "e" in ok(stack, "md-tag-show", ns, "e")
    ok(stack, "md-tag-delete", ns, "a")
    tags = ok(stack, "md-tag-list", ns)
    assert all(t in tags for t in ("b", "c", "e")) and " a " not in tags

    ok(stack, "md-resource-type-associate", ns, "--name", "OS::Glance::Image", "--prefix", "hw_")
    assert "OS::Glance::Image" in ok(stack, "md-resource-type-list")
    assert "hw_" in ok(stack, "md-namespace-resource-type-list", ns)
    # the association's prefix applied on show
    shown = ok(stack, "md-namespace-show", ns, "--resource-type", "OS::Glance::Image")
    assert "hw_disk_bus" in shown
    status, out = glance_cli(stack, "md-property-show", ns, "disk_bus")
    assert status == 0

    ok(stack, "md-resource-type-deassociate", ns, "OS::Glance::Image")
    assert "OS::Glance::Image" not in ok(stack, "md-namespace-resource-type-list", ns)
    ok(stack, "md-namespace-properties-delete", ns)
    ok(stack, "md-namespace-objects-delete", ns)
    ok(stack, "md-namespace-tags-delete", ns)
    shown = ok(stack, "md-namespace-show", ns)
    assert "cpu2" not in shown and "disk_bus" not in shown
    ok(stack, "md-namespace-delete", ns)
    status, out = glance_cli(stack, "md-namespace-show", ns)
    assert status == 1 and "was not found" in out


def test_glance_script(stack):
    """The ``glance`` script itself, once (the other commands run in this process)."""
    done = subprocess.run(
        [
            str(ROOT / ".venv/bin/glance"),
            "--os-image-url",
            stack.url,
            "--os-auth-token",
            "development",
            "md-namespace-list",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "namespace" in done.stdout, done.stderr


def test_openstacksdk_metadef_calls(stack):
    import openstack
    from keystoneauth1 import session as ks_session
    from keystoneauth1.noauth import NoAuth

    session = ks_session.Session(
        auth=NoAuth(), additional_headers={"X-Roles": "admin", "X-Project-Id": "sdk-admin"}
    )
    conn = openstack.connection.Connection(session=session, image_endpoint_override=stack.url)
    image = conn.image
    ns = unique("sdk")
    created = image.create_metadef_namespace(namespace=ns, visibility="public", protected=True)
    assert (created.namespace, created.owner, created.is_protected) == (ns, "sdk-admin", True)
    assert ns in {n.namespace for n in image.metadef_namespaces()}
    prop = image.create_metadef_property(ns, name="p", title="P", type="integer", minimum=1)
    assert (prop.name, prop.type, prop.minimum) == ("p", "integer", 1)
    assert [p.name for p in image.metadef_properties(ns)] == ["p"]
    obj = image.create_metadef_object(
        ns, name="o", required=["x"], properties={"x": {"type": "string", "title": "X"}}
    )
    assert obj.required == ["x"]
    assert image.get_metadef_object("o", ns).properties["x"]["type"] == "string"
    image.create_metadef_resource_type_association(ns, name="OS::Nova::Flavor", prefix="f:")
    assert "OS::Nova::Flavor" in {r.name for r in image.metadef_resource_types()}
    assert [a.prefix for a in image.metadef_resource_type_associations(ns)] == ["f:"]
    assert image.get_metadef_namespace_schema().name == "namespace"
    updated = image.update_metadef_namespace(ns, namespace=ns, description="new", protected=False)
    assert updated.description == "new" and not updated.is_protected
    image.delete_metadef_namespace(ns)
    assert ns not in {n.namespace for n in image.metadef_namespaces()}


def listed(api, query: str = "") -> set[str]:
    found = api.get(f"/v2/metadefs/namespaces?limit=1000{query}").json()["namespaces"]
    return {n["namespace"] for n in found}


def test_visibility_and_protection(admin, project_a, project_b):
    private, public = unique("private"), unique("public")
    base = "/v2/metadefs/namespaces"
    # only an admin creates (Glance's defaults since Wallaby)
    msg = error_of(project_a.post(base, json={"namespace": private}), 403)
    assert msg == "You are not authorized to complete add_metadef_namespace action."
    resp = admin.post(base, json={"namespace": private, "owner": project_a.project})
    assert resp.status_code == 201 and resp.json()["visibility"] == "private"
    resp = admin.post(
        base,
        json={
            "namespace": public,
            "visibility": "public",
            "protected": True,
            "tags": [{"name": "t"}],
        },
    )
    assert resp.status_code == 201 and resp.headers["Location"].endswith(f"{base}/{public}")

    # the owner and admins see a private namespace; another project does not
    assert project_a.get(f"{base}/{private}").status_code == 200
    assert admin.get(f"{base}/{private}").status_code == 200
    error_of(project_b.get(f"{base}/{private}"), 404)
    error_of(project_b.get(f"{base}/{private}/properties"), 404)
    error_of(project_b.get(f"{base}/{private}/objects"), 404)
    error_of(project_b.get(f"{base}/{private}/tags"), 404)
    assert private in listed(project_a) and public in listed(project_a)
    assert private not in listed(project_b) and public in listed(project_b)
    assert private not in listed(project_a, "&visibility=public")
    assert listed(project_a, "&visibility=private") >= {private}
    # readers read public namespaces and their contents, but change nothing
    assert project_b.get(f"{base}/{public}/tags").json() == {"tags": [{"name": "t"}]}
    msg = error_of(project_b.delete(f"{base}/{public}/tags/t"), 403)
    assert msg == "You are not authorized to complete delete_metadef_tag action."
    error_of(project_b.post(f"{base}/{public}/tags/u"), 403)
    error_of(project_a.put(f"{base}/{private}", json={"namespace": private}), 403)

    # a protected namespace and its contents cannot be deleted, even by an admin
    msg = error_of(admin.delete(f"{base}/{public}"), 403)
    assert msg == f"Metadata definition namespace {public} is protected and cannot be deleted."
    error_of(admin.delete(f"{base}/{public}/tags"), 403)
    error_of(admin.delete(f"{base}/{public}/tags/t"), 403)
    resp = admin.put(f"{base}/{public}", json={"namespace": public, "visibility": "public"})
    assert resp.status_code == 200 and resp.json()["protected"] is False
    assert admin.delete(f"{base}/{public}").status_code == 204
    assert admin.delete(f"{base}/{private}").status_code == 204
    error_of(project_a.get(f"{base}/{private}"), 404)


def test_lists_pages_and_resource_type_filter(admin, project_b):
    base = "/v2/metadefs/namespaces"
    group = unique("page")
    names = [f"{group}-{i}" for i in range(3)]
    for i, name in enumerate(names):
        body = {"namespace": name, "visibility": "public"}
        if i != 1:
            body["resource_type_associations"] = [{"name": f"{group}-rt", "prefix": "x_"}]
        assert admin.post(base, json=body).status_code == 201
    query = f"resource_types={group}-rt&sort_key=namespace&sort_dir=asc&limit=1"
    first = project_b.get(f"{base}?{query}").json()
    assert [n["namespace"] for n in first["namespaces"]] == [names[0]]
    assert first["first"].startswith(f"{base}?") and "marker" not in first["first"]
    second = project_b.get(first["next"]).json()
    assert [n["namespace"] for n in second["namespaces"]] == [names[2]]
    assert second["namespaces"][0]["resource_type_associations"][0]["prefix"] == "x_"
    tags = [{"name": n} for n in ("a", "b", "c")]
    assert admin.post(f"{base}/{names[1]}/tags", json={"tags": tags}).status_code == 201
    page = admin.get(f"{base}/{names[1]}/tags?sort_key=name&sort_dir=asc&limit=2&marker=a")
    assert page.json() == {"tags": [{"name": "b"}, {"name": "c"}]}
    # without X-Openstack-Append the tags are replaced, with it they are added
    admin.post(f"{base}/{names[1]}/tags", json={"tags": [{"name": "z"}]})
    assert admin.get(f"{base}/{names[1]}/tags").json() == {"tags": [{"name": "z"}]}
    admin.post(
        f"{base}/{names[1]}/tags",
        json={"tags": [{"name": "y"}]},
        headers={"X-Openstack-Append": "true"},
    )
    assert {t["name"] for t in admin.get(f"{base}/{names[1]}/tags").json()["tags"]} == {"y", "z"}
    # no tags at all: nothing changes (Glance's)
    assert admin.post(f"{base}/{names[1]}/tags", json={}).json() == {"tags": []}
    assert {t["name"] for t in admin.get(f"{base}/{names[1]}/tags").json()["tags"]} == {"y", "z"}
    for name in names:
        assert admin.delete(f"{base}/{name}").status_code == 204


@pytest.fixture(scope="module")
def bad_input_ns(stack):
    """A namespace with a property ``dup`` (one per database)."""
    admin = Api(stack.url, project="md-bad-input", roles="admin")
    ns = unique("bad")
    assert admin.post("/v2/metadefs/namespaces", json={"namespace": ns}).status_code == 201
    prop = {"name": "dup", "title": "P", "type": "string"}
    assert admin.post(f"/v2/metadefs/namespaces/{ns}/properties", json=prop).status_code == 201
    return ns


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "", {"display_name": "x"}, 400, "'namespace' is a required property"),
        ("POST", "", {"namespace": "x", "visibility": "shared"}, 400, "is not one of"),
        ("POST", "", {"namespace": "x", "self": "/x"}, 403, "Attribute 'self' is read-only."),
        ("POST", "", {"namespace": "x" * 81}, 400, "is too long"),
        ("POST", "", ["x"], 400, "JSON object"),
        (
            "POST",
            "",
            {"namespace": "x", "properties": {"p": {"title": "P", "type": "string", "bogus": 1}}},
            400,
            "Unknown attribute",
        ),
        (
            "POST",
            "",
            {"namespace": "x", "properties": {"p": {"title": "P", "type": "integer", "enum": [1]}}},
            400,
            "list of strings",
        ),
        ("GET", "?limit=x", None, 400, "limit param must be an integer"),
        ("GET", "?limit=-1", None, 400, "limit param must be positive"),
        ("GET", "?sort_dir=up", None, 400, "Invalid sort direction: up"),
        ("GET", "?sort_key=nope", None, 400, "Invalid sort key: nope"),
        ("GET", "?visibility=shared", None, 400, "Invalid visibility value: shared"),
        ("GET", "?marker=no-such-namespace", None, 404, "was not found"),
        (
            "GET",
            "/no-such-namespace",
            None,
            404,
            "Metadata definition namespace=no-such-namespace was not found.",
        ),
        (
            "PUT",
            "/no-such-namespace",
            {"namespace": "y"},
            404,
            "Namespace no-such-namespace not found",
        ),
        (
            "POST",
            "/{ns}/properties",
            {"name": "p", "title": "P", "type": "strin"},
            400,
            "is not one of",
        ),
        (
            "POST",
            "/{ns}/properties",
            {"name": "p", "title": "P"},
            400,
            "'type' is a required property",
        ),
        (
            "POST",
            "/{ns}/properties",
            {"name": "p", "title": "P", "type": "string", "minimum": "1"},
            400,
            "is not of type 'number'",
        ),
        (
            "POST",
            "/{ns}/properties",
            {"name": "dup", "title": "P", "type": "string"},
            409,
            "A metadata definition property with name=dup already exists",
        ),
        (
            "POST",
            "/{ns}/objects",
            {"name": "o", "properties": {"a": {"type": "string"}}},
            400,
            "'title' is a required property",
        ),
        ("POST", "/{ns}/objects", {"name": "o", "required": "a"}, 400, "is not of type 'array'"),
        ("PUT", "/{ns}/objects/none", {"name": "none"}, 404, "Could not find metadata object none"),
        ("POST", "/{ns}/tags", {"tags": [{"nam": "b"}]}, 400, "'name' is a required property"),
        (
            "POST",
            "/{ns}/tags",
            {"tags": [{"name": "c"}, {"name": "c"}]},
            409,
            "A metadata tag with name=c already exists",
        ),
        ("POST", "/{ns}/tags/" + "t" * 81, None, 400, "is too long"),
        ("GET", "/{ns}/tags?limit=x", None, 400, "limit param must be an integer"),
        ("PUT", "/{ns}/tags/none", {"name": "x"}, 404, "Could not find metadata tag none"),
        ("POST", "/{ns}/resource_types", {"prefix": "x"}, 400, "'name' is a required property"),
        (
            "DELETE",
            "/{ns}/resource_types/none",
            None,
            404,
            "Failed to find resource type none to delete",
        ),
        (
            "GET",
            "/{ns}/properties/dup?resource_type=none",
            None,
            404,
            "resource-type with name=none, was not found",
        ),
    ],
)
def test_bad_input_is_a_json_4xx(admin, bad_input_ns, method, path, body, status, message):
    url = "/v2/metadefs/namespaces" + path.replace("{ns}", bad_input_ns)
    resp = admin.request(method, url, json=body)
    assert message in error_of(resp, status)


def test_schemas_are_glances(stack):
    from services.common.metadef_schemas import served

    api = Api(stack.url)
    for name, document in served().items():
        assert api.get(f"/v2/schemas/metadefs/{name}").json() == document
    error_of(api.get("/v2/schemas/metadefs/nope"), 404)


FILES = {
    "ComputeThing.json": {
        "namespace": "TEST::Compute::Thing",
        "display_name": "Compute Thing",
        "description": "Things a compute host has.",
        "visibility": "public",
        "protected": True,
        "resource_type_associations": [
            {"name": "OS::Glance::Image", "prefix": "thing_"},
            {"name": "OS::Cinder::Volume", "prefix": "thing_", "properties_target": "image"},
        ],
        "properties": {
            "kind": {
                "title": "Kind",
                "description": "What kind.",
                "type": "string",
                "enum": ["big", "small"],
                "default": "big",
            },
            "count": {"title": "Count", "type": "integer", "minimum": 1, "maximum": 64},
        },
        "objects": [
            {
                "name": "Part",
                "description": "A part.",
                "required": ["size"],
                "properties": {"size": {"title": "Size", "type": "number"}},
            }
        ],
        "tags": [{"name": "alpha"}, {"name": "beta"}],
    },
    "PrivateBits.json": {
        "namespace": "TEST::Private::Bits",
        "display_name": "Private Bits",
        "visibility": "private",
        "protected": False,
        "owner": "some-project",
        "properties": {"flag": {"title": "Flag", "type": "boolean"}},
    },
}


def manage(stack, *args: str) -> tuple[int, str]:
    """``tessera-manage db <args>`` run in this process: (exit status, output)."""
    from services.registry.manage import main

    out = io.StringIO()
    argv = ["--config-file", str(stack.config), "db", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv)
        except SystemExit as exc:
            print(exc.code if isinstance(exc.code, str) else "")
            return 1 if exc.code else 0, out.getvalue()
    return 0, out.getvalue()


def test_load_export_unload(stack, tmp_path, admin):
    source, exported = tmp_path / "source", tmp_path / "exported"
    source.mkdir()
    for name, document in FILES.items():
        (source / name).write_text(json.dumps(document))
    (source / "notes.txt").write_text("not a definition")
    # the command itself once; the other runs call its main() in this process
    done = subprocess.run(
        [sys.executable, "-m", "services.registry.manage", "--config-file", str(stack.config)]
        + ["db", "load_metadefs", "--path", str(source)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "loaded 2 namespace(s)" in done.stdout, done.stderr

    # what the API serves: the catalogue, with the association's prefix on show
    shown = admin.get(
        "/v2/metadefs/namespaces/TEST::Compute::Thing?resource_type=OS::Glance::Image"
    )
    assert set(shown.json()["properties"]) == {"thing_kind", "thing_count"}
    assert shown.json()["owner"] == "admin" and shown.json()["protected"] is True
    reader = Api(stack.url, project=unique("reader"), roles="reader")
    assert reader.get("/v2/metadefs/namespaces/TEST::Compute::Thing").status_code == 200
    assert reader.get("/v2/metadefs/namespaces/TEST::Private::Bits").status_code == 404

    assert manage(stack, "export_metadefs", "--path", str(exported))[0] == 0
    for name, document in FILES.items():
        assert json.loads((exported / name).read_text()) == document

    # loaded again: skipped; with --merge --prefer_new the file wins; flags need --merge
    changed = {**FILES["PrivateBits.json"], "description": "now described"}
    (source / "PrivateBits.json").write_text(json.dumps(changed))
    manage(stack, "load_metadefs", "--path", str(source / "PrivateBits.json"))
    assert "description" not in admin.get("/v2/metadefs/namespaces/TEST::Private::Bits").json()
    status, out = manage(stack, "load_metadefs", "--path", str(source), "--prefer_new")
    assert status == 1 and "--merge" in out
    manage(stack, "load_metadefs", "--path", str(source), "--merge", "--prefer_new")
    ns = admin.get("/v2/metadefs/namespaces/TEST::Private::Bits").json()
    assert ns["description"] == "now described"

    assert manage(stack, "unload_metadefs") == (0, "metadata definitions removed\n")
    admin_list = admin.get("/v2/metadefs/namespaces").json()["namespaces"]
    assert not {n["namespace"] for n in admin_list} & {
        "TEST::Compute::Thing",
        "TEST::Private::Bits",
    }
    assert admin.get("/v2/metadefs/resource_types").json() == {"resource_types": []}
