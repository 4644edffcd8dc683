"""When the broker or a service is missing, the API answers 503 with a message, fast."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from tests.stack import ROOT, Stack, free_port


def test_broker_down_is_a_clear_startup_error(tmp_path):
    stack = Stack(tmp_path, f"rabbit://guest:guest@127.0.0.1:{free_port()}/")
    with pytest.raises(RuntimeError) as err:
        stack.start(timeout=30)
    assert "cannot reach RabbitMQ" in str(err.value)
    assert "rabbitmq-server" in str(err.value)


def _wait_for_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.2)


@contextmanager
def gateway_alone(stack: Stack):
    """The API process of ``stack``'s config alone (no tessera-run, no services)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.api.server", "--config-file", str(stack.config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_http(f"{stack.url}/versions")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        stack.cleanup()


def test_gateway_without_registry_answers_503(tmp_path):
    """The API process alone on an empty vhost: 503 at once, not a hang."""
    stack = Stack(tmp_path)
    with gateway_alone(stack):
        started = time.monotonic()
        resp = requests.get(f"{stack.url}/v2/images", timeout=15)
        assert resp.status_code == 503
        assert "registry service is not running" in resp.json()["error"]["message"]
        assert time.monotonic() - started < 5
        assert requests.get(f"{stack.url}/versions", timeout=5).status_code == 200


def test_gateway_with_broker_gone_answers_503(tmp_path):
    """The API up but its broker unreachable: every call is a 503 with a message."""
    stack = Stack(tmp_path, f"rabbit://guest:guest@127.0.0.1:{free_port()}/")
    with gateway_alone(stack):
        resp = requests.post(f"{stack.url}/v2/images", json={"name": "x"}, timeout=15)
        assert resp.status_code == 503
        assert "message broker" in resp.json()["error"]["message"]
