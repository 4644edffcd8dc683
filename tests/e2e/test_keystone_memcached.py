"""The install guides' ``[keystone_authtoken]`` block with ``memcached_servers``: a real
memcached (the Debian package, started here) and a real Keystone (tests/keystone.py).
A token is validated by Keystone once, then served from memcached."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
import requests

from tests.keystone import Keystone
from tests.stack import Stack, free_port

MEMCACHED = shutil.which("memcached")


class Memcached:
    """memcached on a free loopback port, for one test module."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                MEMCACHED,
                "-l",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "0",
                "-m",
                "16",
                "-u",
                "nobody",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("memcached did not start") from None
                time.sleep(0.05)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stats(self) -> dict[str, str]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return {
            parts[1]: parts[2]
            for parts in (line.split() for line in data.decode().splitlines())
            if len(parts) == 3 and parts[0] == "STAT"
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
