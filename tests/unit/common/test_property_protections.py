"""The property protection rules engine (services/common/property_protections.py): both
formats, ``@`` and ``!``, first match in file order, Glance's reserved section, and the
files that cannot be used."""

from __future__ import annotations

import os
import textwrap
import time

import pytest

from services.common import property_protections as pp
from services.common.config import build_config
from services.common.context import RequestContext
from services.common.errors import Forbidden
from services.common.policy import Policy
from services.common.property_protections import (
    InvalidProtections,
    PropertyRules,
    ProtectionsFile,
)

ROLES_FILE = """
[^x_owner_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[x_readonly]
create = admin
read = admin, member , READER
update = admin
delete = admin

[^x_none_]
create = !
read = !
update = !
delete = !

[^x_all_]
create = @
read = @
update = @
delete = @

[^x_empty_]
create = admin
read =
update = admin
delete = admin

[.*]
create = admin
read = admin
update = admin
delete = admin
"""


def ctx(*roles, policy=None):
    return RequestContext(project_id="p1", roles=roles, is_admin="admin" in roles, policy=policy)


ADMIN, MEMBER, READER = ctx("admin", "member", "reader"), ctx("member", "reader"), ctx("reader")


@pytest.fixture(scope="module")
def rules():
    return PropertyRules.parse(ROLES_FILE, "roles")


def test_roles_listed_may_and_others_may_not(rules):
    assert rules.allows("x_owner_foo", "update", MEMBER)
    assert not rules.allows("x_owner_foo", "read", READER)
    # readable but not writable by members; role names compared in lower case
    assert rules.allows("x_readonly", "read", MEMBER)
    assert rules.allows("x_readonly", "read", READER)
    for op in ("create", "update", "delete"):
        assert not rules.allows("x_readonly", op, MEMBER)
        assert rules.allows("x_readonly", op, ADMIN)


def test_at_allows_everyone_and_bang_nobody_not_even_admin(rules):
    anybody = ctx()
    for op in pp.OPERATIONS:
        assert rules.allows("x_all_thing", op, anybody)
        assert not rules.allows("x_none_thing", op, ADMIN)


def test_an_empty_permission_allows_nobody(rules):
    assert not rules.allows("x_empty_thing", "read", ADMIN)
    assert rules.allows("x_empty_thing", "update", ADMIN)


def test_first_matching_section_in_file_order_wins(rules):
    # x_readonly_extra matches [x_readonly] before [.*]; the search is not anchored,
    # as Glance's (re.search): "my_x_readonly" matches [x_readonly] too
    assert rules.allows("x_readonly_extra", "read", READER)
    assert rules.allows("my_x_readonly", "read", READER)
    # ^ anchors: "my_x_none_" is not [^x_none_], it falls to [.*] (admin only)
    assert rules.allows("my_x_none_", "read", ADMIN)
    assert not rules.allows("my_x_none_", "read", MEMBER)
    reordered = PropertyRules.parse(
        "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
        "[^x_none_]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
    )
    assert reordered.allows("x_none_thing", "read", READER)


def test_a_property_no_section_matches_is_denied_as_in_glance():
    rules = PropertyRules.parse("[^x_]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    assert rules.allows("x_a", "read", READER)
    for op in pp.OPERATIONS:
        assert not rules.allows("unmatched", op, ADMIN)
    assert not rules.allows("x_a", "frobnicate", ADMIN)


def test_os_glance_properties_are_allowed_whatever_the_file_says():
    rules = PropertyRules.parse(
        "[os_glance_stage_host]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
        "[.*]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
    )
    assert [s.expression for s in rules.sections] == ["os_glance.*", ".*"]
    assert rules.allows("os_glance_stage_host", "read", READER)
    assert not rules.allows("other", "read", ADMIN)


def test_check_and_readable(rules):
    with pytest.raises(Forbidden, match=r"^Attribute 'x_readonly' is reserved\.$"):
        rules.check("x_readonly", "update", MEMBER)
    props = {"x_owner_a": "1", "x_readonly": "2", "x_none_b": "3", "x_all_c": "4", "zz": "5"}
    assert rules.readable(props, READER) == {"x_readonly": "2", "x_all_c": "4"}
    record = {"id": "i", "properties": props}
    assert rules.shown(record, MEMBER)["properties"] == {
        "x_owner_a": "1",
        "x_readonly": "2",
        "x_all_c": "4",
    }
    assert record["properties"] == props  # not changed in place


def test_no_file_protects_nothing():
    none = PropertyRules.disabled()
    assert none.allows("anything", "delete", ctx()) and not none.enabled
    record = {"properties": {"a": "1"}}
    assert none.shown(record, ctx()) is record


POLICY_RULES_FILE = """
[^x_pol_]
create = prop_admin
read = prop_reader
update = prop_admin
delete = !

[^x_undefined_]
create = no_such_rule
read = @
update = no_such_rule
delete = no_such_rule
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(
        '"prop_admin": "role:admin"\n"prop_reader": "role:reader or role:admin"\n'
        '"default": "role:admin"\n'
    )
    conf_file = path.with_name("tessera.conf")
    conf_file.write_text(f"[oslo_policy]\npolicy_file = {path}\n")
    conf = build_config()
    conf(["--config-file", str(conf_file)], project="tessera", default_config_files=[])
    return Policy(conf)


def test_policies_format_evaluates_the_policy_files_rules(policy):
    rules = PropertyRules.parse(POLICY_RULES_FILE, "policies")
    admin, member, reader = (ctx(*c.roles, policy=policy) for c in (ADMIN, MEMBER, READER))
    assert rules.allows("x_pol_a", "create", admin)
    assert not rules.allows("x_pol_a", "create", member)
    assert rules.allows("x_pol_a", "read", reader)
    assert not rules.allows("x_pol_a", "read", ctx("other", policy=policy))
    assert not rules.allows("x_pol_a", "delete", admin)  # '!' in the policies format
    # a rule the policy file does not define is judged by oslo.policy's default rule
    # (Glance's "default", which the file here makes admin-only), as in Glance
    assert rules.allows("x_undefined_a", "create", admin)
    assert not rules.allows("x_undefined_a", "create", member)
    assert rules.allows("x_undefined_a", "read", ctx(policy=policy))


@pytest.mark.parametrize(
    ("text", "rule_format", "message"),
    [
        ("[x]\ncreate = @\nread = @\nupdate = @\n", "roles", r"\[x\] has no 'delete'"),
        ("[x(]\ncreate = @\nread = @\nupdate = @\ndelete = @\n", "roles", "regular expression"),
        ("[x]\ncreate = @,!\nread = @\nupdate = @\ndelete = @\n", "roles", "mutually exclusive"),
        ("[x]\ncreate = a,b\nread = a\nupdate = a\ndelete = a\n", "policies", "one policy"),
        ("[x]\ncreate = @\n[x]\nread = @\n", "roles", "not a valid INI file"),
        ("create = @\n", "roles", "not a valid INI file"),
        ("[x]\ncreate = 50%\nread = @\nupdate = @\ndelete = @\n", "roles", r"\[x\]"),
        ("[x]\ncreate = @\nread = @\nupdate = @\ndelete = @\n", "rules", "rule_format"),
    ],
)
def test_a_malformed_file_is_refused_with_one_line(text, rule_format, message):
    with pytest.raises(InvalidProtections, match=message) as info:
        PropertyRules.parse(text, rule_format, "/etc/tessera/pp.conf")
    assert "\n" not in str(info.value)


def _conf(tmp_path, **default):
    conf_file = tmp_path / "tessera.conf"
    conf_file.write_text("[DEFAULT]\n" + "".join(f"{k} = {v}\n" for k, v in default.items()))
    conf = build_config()
    conf(["--config-file", str(conf_file)], project="tessera", default_config_files=[])
    return conf


def test_from_config_finds_a_relative_file_beside_the_config_and_checks_at_start(tmp_path):
    (tmp_path / "pp.conf").write_text(ROLES_FILE)
    rules = pp.from_config(_conf(tmp_path, property_protection_file="pp.conf"))
    assert rules.enabled and rules.allows("x_readonly", "read", READER)
    assert not pp.from_config(_conf(tmp_path)).enabled
    with pytest.raises(SystemExit, match=r"^tessera-x: cannot read the property protection"):
        pp.check_at_start(_conf(tmp_path, property_protection_file="missing.conf"), "tessera-x")
    bad_format = _conf(
        tmp_path, property_protection_file="pp.conf", property_protection_rule_format="acl"
    )
    with pytest.raises(SystemExit, match="property_protection_rule_format"):
        pp.check_at_start(bad_format, "tessera-x")


def test_a_changed_file_is_read_again_and_a_broken_change_keeps_the_old_rules(
    tmp_path, monkeypatch
):
    path = tmp_path / "pp.conf"
    path.write_text("[^a]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    monkeypatch.setattr(pp, "RELOAD_SECONDS", 0.0)
    watched = ProtectionsFile(_conf(tmp_path, property_protection_file=path))
    assert watched.current().allows("ab", "read", READER)
    path.write_text(textwrap.dedent("[^a]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not watched.current().allows("ab", "read", READER)
    path.write_text("[^a(\ncreate = @\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    assert not watched.current().allows("ab", "read", READER)  # previous rules kept
