"""The install guides' ``[keystone_authtoken]`` block with ``memcached_servers``: a real
memcached (the Debian package, started here) and a real Keystone (tests/keystone.py).
A token is validated by Keystone once, then served from memcached."""

from __future__ import annotations

import pytest
import requests

from tests.keystone import Keystone
from tests.memcached import MEMCACHED, Memcached
from tests.stack import Stack


@pytest.fixture(scope="module")
def memcached():
    if MEMCACHED is None:
        pytest.skip("memcached is not installed (make system-deps)")
    server = Memcached()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keystone():
    ks = Keystone().start()
    yield ks
    ks.stop()


@pytest.fixture(scope="module")
def cloud(keystone, memcached, tmp_path_factory):
    """Tessera with the install guide's block, memcached_servers included."""
    stack = Stack(
        tmp_path_factory.mktemp("keystone-memcached"),
        sections={
            "paste_deploy": {"flavor": "keystone"},
            "keystone_authtoken": {
                **keystone.keystone_authtoken_options(),
                "memcached_servers": memcached.server,
            },
        },
    )
    stack.ready_path = "/versions"
    stack.start()
    yield stack
    stack.cleanup()


def test_a_token_is_validated_once_then_served_from_memcached(cloud, keystone, memcached):
    token = keystone.token("demo")
    before = memcached.stats()
    resp = requests.get(f"{cloud.url}/v2/images", headers={"X-Auth-Token": token}, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["images"] == []
    first = memcached.stats()
    assert int(first["cmd_set"]) > int(before["cmd_set"])  # the validated token, stored
    resp = requests.get(f"{cloud.url}/v2/images", headers={"X-Auth-Token": token}, timeout=30)
    assert resp.status_code == 200, resp.text
    second = memcached.stats()
    assert int(second["get_hits"]) > int(first["get_hits"])  # served from the cache
    assert int(second["cmd_set"]) == int(first["cmd_set"])  # not validated again


def test_a_bad_token_is_still_a_json_401(cloud):
    resp = requests.get(f"{cloud.url}/v2/images", headers={"X-Auth-Token": "bogus"}, timeout=30)
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == 401
