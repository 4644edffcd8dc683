"""Fixtures shared by the tests of services/common."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def no_os_environment(monkeypatch):
    """Options from the developer's environment (``OS_*`` variables, which oslo.config
    reads) must not leak into tests of configuration loading."""
    for name in list(os.environ):
        if name.startswith("OS_"):
            monkeypatch.delenv(name)
