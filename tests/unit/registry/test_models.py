"""The SQLAlchemy models configure cleanly (services/registry/models.py)."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import services.registry.models


def test_models_configure_without_deprecation_warnings(monkeypatch):
    # A private copy of the module: its own registry, configured here for the first time.
    spec = importlib.util.spec_from_file_location("fresh_models", services.registry.models.__file__)
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fresh_models", fresh)
    spec.loader.exec_module(fresh)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.Base.registry.configure()
    assert [str(w.message) for w in caught] == []
