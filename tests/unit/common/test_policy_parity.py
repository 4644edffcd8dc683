"""Tessera's policy defaults against Glance 33's own, read from the Glance wheel on PyPI.

The wheel is downloaded once (pip, no dependencies) into a cache under /tmp and its
``glance.policies.list_rules()`` is read in a child process with the wheel on
``sys.path`` (it needs only oslo.policy, which the project has), so nothing of Glance is
imported into the test process. Every rule name, check string (compared parsed, so only
the formatting may differ), scope and deprecation is compared; a difference must be
listed in ``services.common.policy.DIFFERENCES_FROM_GLANCE`` and in README.md's table."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from oslo_policy import _parser

from services.common import policy
from services.common.context import RequestContext

GLANCE_VERSION = "33.0.0"
CACHE = Path(os.environ.get("TESSERA_GLANCE_WHEEL_DIR", "/tmp/tessera-glance-wheel"))
README = Path(__file__).resolve().parents[3] / "README.md"

READ_RULES = """
import json, sys
sys.path.insert(0, sys.argv[1])
import glance.policies
print(json.dumps([
    {
        "name": rule.name,
        "check_str": rule.check_str,
        "scope_types": sorted(rule.scope_types or []),
        "deprecated": bool(getattr(rule, "deprecated_rule", None)),
    }
    for rule in glance.policies.list_rules()
]))
"""


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
    except OSError:
        return False
    return True


def _glance_wheel() -> Path:
    wheel = CACHE / f"glance-{GLANCE_VERSION}-py3-none-any.whl"
    if wheel.exists():
        return wheel
    partial = CACHE / f"partial-{os.getpid()}"  # renamed into place only when complete
    partial.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            + ["--dest", str(partial), f"glance=={GLANCE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0 or not (partial / wheel.name).exists():
            if not _pypi_reachable():
                pytest.skip(f"PyPI cannot be reached to fetch glance=={GLANCE_VERSION}")
            raise AssertionError(f"pip download glance=={GLANCE_VERSION} failed:\n{done.stderr}")
        os.replace(partial / wheel.name, wheel)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return wheel


@pytest.fixture(scope="module")
def glance_rules() -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-c", READ_RULES, str(_glance_wheel())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"reading glance.policies.list_rules() failed:\n{done.stderr}"
    rules = {rule["name"]: rule for rule in json.loads(done.stdout)}
    assert len(rules) > 60 and "deactivate" in rules  # the wheel really was read
    return rules


@pytest.fixture(scope="module")
def tessera_rules() -> dict:
    """The rules as registered in the enforcer that authorises requests."""
    return dict(policy.Policy().enforcer.registered_rules)


def normalised(check_str: str) -> str:
    """The check string as oslo.policy parses it: the same for the same tree whatever
    the whitespace and redundant parentheses."""
    return str(_parser.parse_rule(check_str))


def differences(glance_rules: dict, tessera_rules: dict) -> dict[str, str]:
    found = {}
    for name in sorted(glance_rules.keys() | tessera_rules.keys()):
        if name not in tessera_rules:
            found[name] = "missing in Tessera"
        elif name not in glance_rules:
            found[name] = "not a Glance rule"
        elif normalised(glance_rules[name]["check_str"]) != normalised(
            tessera_rules[name].check_str
        ):
            found[name] = (
                f"check string: Glance {glance_rules[name]['check_str']!r}, "
                f"Tessera {tessera_rules[name].check_str!r}"
            )
        elif glance_rules[name]["scope_types"] != sorted(tessera_rules[name].scope_types or []):
            found[name] = (
                f"scope: Glance {glance_rules[name]['scope_types']}, "
                f"Tessera {tessera_rules[name].scope_types}"
            )
    return found


def test_every_difference_from_glance_is_listed(glance_rules, tessera_rules):
    found = differences(glance_rules, tessera_rules)
    unlisted = {k: v for k, v in found.items() if k not in policy.DIFFERENCES_FROM_GLANCE}
    assert not unlisted, f"differences from Glance {GLANCE_VERSION} not listed: {unlisted}"
    gone = set(policy.DIFFERENCES_FROM_GLANCE) - set(found)
    assert not gone, f"listed as differences but now the same as Glance: {gone}"


def test_the_readme_table_lists_the_same_differences():
    text = README.read_text()
    section = text.split("## Authorisation, sharing and quotas", 1)[1].split("\n## ", 1)[0]
    for name in policy.DIFFERENCES_FROM_GLANCE:
        assert re.search(rf"^\| `{re.escape(name)}` \|", section, re.M), name


def test_no_deprecated_rules_are_registered(glance_rules, tessera_rules):
    """Glance's deprecated (pre-Wallaby) defaults rely on owner checks in Glance's code
    that Tessera does not have: registering them would open every image to anyone when
    an operator sets enforce_new_defaults = False."""
    assert any(rule["deprecated"] for rule in glance_rules.values())
    assert not [name for name, rule in tessera_rules.items() if rule.deprecated_rule]


def test_normalising_keeps_meaning():
    """The comparison ignores formatting only: precedence is parsed, not erased."""
    assert normalised("a:1 or b:2 and c:3") == normalised("a:1 or (b:2 and c:3)")
    assert normalised("(a:1 or b:2) and c:3") != normalised("a:1 or b:2 and c:3")
    assert normalised("role:member") != normalised("role:reader")


def _ctx(project: str, *roles: str) -> RequestContext:
    return RequestContext(project_id=project, roles=roles, is_admin="admin" in roles)


@pytest.mark.parametrize("action", ["deactivate", "reactivate"])
def test_a_project_member_deactivates_and_reactivates_its_own_images(action):
    rules = policy.Policy()
    target = {"project_id": "p1", "owner": "p1", "visibility": "private", "member_id": None}
    assert rules.allows(action, target, _ctx("p1", "member", "reader"))
    assert rules.allows(action, target, _ctx("elsewhere", "admin", "member", "reader"))
    assert not rules.allows(action, target, _ctx("p1", "reader"))
    assert not rules.allows(action, target, _ctx("p2", "member", "reader"))
    shared = {**target, "visibility": "shared", "member_id": "p2"}
    assert not rules.allows(action, shared, _ctx("p2", "member", "reader"))
