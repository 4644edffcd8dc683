"""tessera-ping, the health check of docker-compose.yml: each service of a running stack
answers (exit 0, one line); a service nobody runs, or a gateway nobody serves, is exit 1
with one line, within a few seconds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.stack import ROOT, free_port, write_config


def ping(name: str, *config_args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.ping", name, *config_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_every_service_of_a_running_stack_answers(stack):
    for name in ("registry", "store", "cache", "api"):
        done = ping(name, *stack.config_args)
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout.startswith(f"{name}: "), done.stdout
        assert "unhealthy" not in done.stdout


def test_nothing_running_is_unhealthy(tmp_path, vhost):
    """A vhost no service consumes on, a port no gateway listens on."""
    config = write_config(
        tmp_path / "t.conf",
        DEFAULT={
            "transport_url": vhost.transport_url,
            "bind_port": free_port(),
            "data_dir": tmp_path / "data",
        },
    )
    for name in ("registry", "store", "api"):
        done = ping(name, "--config-file", str(config))
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{name}: unhealthy: "), done.stderr


def test_usage():
    done = ping("glance")
    assert done.returncode == 1 and "usage: tessera-ping" in done.stderr
