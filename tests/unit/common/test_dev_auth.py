"""Development auth refuses a non-loopback bind_host unless allow_insecure_dev_auth is
set: the check (services/common/dev_auth.py), and tessera-api and tessera-run stopping
at start with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.common.config import load_config
from services.common.dev_auth import dev_auth_exposed, is_loopback
from tests.stack import ROOT, write_config


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def _conf(tmp_path, flavor="", **default):
    path = write_config(
        tmp_path / "t.conf", DEFAULT=default, paste_deploy={"flavor": flavor or None}
    )
    return load_config(["--config-file", str(path)])


def test_dev_auth_on_loopback_starts(tmp_path):
    assert dev_auth_exposed(_conf(tmp_path)) is None  # the default bind_host, 127.0.0.1
    assert dev_auth_exposed(_conf(tmp_path, bind_host="::1")) is None


def test_dev_auth_elsewhere_needs_the_insecure_option(tmp_path):
    reason = dev_auth_exposed(_conf(tmp_path, bind_host="0.0.0.0"))
    assert "bind_host = 0.0.0.0" in reason and "allow_insecure_dev_auth = True" in reason
    assert (
        dev_auth_exposed(_conf(tmp_path, bind_host="0.0.0.0", allow_insecure_dev_auth=True)) is None
    )


@pytest.mark.parametrize("flavor", ["keystone", "keystone+cachemanagement"])
def test_keystone_may_bind_anywhere(tmp_path, flavor):
    assert dev_auth_exposed(_conf(tmp_path, flavor, bind_host="0.0.0.0")) is None


@pytest.mark.parametrize(
    "args", [["-m", "services.api.server"], ["-m", "services.stack"]], ids=["api", "run"]
)
def test_the_api_and_tessera_run_refuse_to_start(tmp_path, args):
    """Exit status 1 with one line, before anything starts (no broker here)."""
    config = write_config(
        tmp_path / "t.conf",
        DEFAULT={
            "bind_host": "0.0.0.0",
            "data_dir": tmp_path / "data",
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
    prog = "tessera-api" if "services.api.server" in args else "tessera-run"
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: development auth"), done.stderr
    assert "allow_insecure_dev_auth" in lines[0]
