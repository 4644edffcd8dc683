"""Tripwires for services/common/rpc.py, which re-implements two nameko 2.14 methods and
relies on one eventlet behaviour; and its deadline rule."""

from __future__ import annotations

import hashlib
import inspect
import time
from importlib.metadata import version
from types import SimpleNamespace

import eventlet
import pytest
from eventlet.greenpool import GreenPool
from nameko.exceptions import IncorrectSignature
from nameko.extensions import Entrypoint
from nameko.rpc import Rpc, RpcConsumer

from services.common.rpc import DEADLINE_HEADER, LeanRpc, expired_for


def source_hash(fn) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def test_nameko_methods_that_leanrpc_reimplements_are_unchanged():
    """LeanRpc.handle_message and LeanRpcConsumer.handle_result copy these; if nameko
    changes them, read the new code and port what changed before updating the hashes."""
    assert version("nameko") == "2.14.1"
    assert source_hash(Rpc.handle_message) == "7cafedcdfc41a571"
    assert source_hash(RpcConsumer.handle_result) == "25b95fd9dfce82c2"
    assert source_hash(RpcConsumer.setup) == "5f423f9c59173a5d"
    assert source_hash(Entrypoint.check_signature) == "568d1c1e1852f91b"


def test_greenpool_spawn_returns_before_the_worker_runs():
    """LeanRpc checks the deadline after spawn_worker returns and before the worker runs
    (a pool slot is free by then); that needs spawn not to switch to the new thread."""
    ran = []
    pool = GreenPool(1)
    pool.spawn(ran.append, 1)
    assert ran == []
    pool.waitall()
    assert ran == [1]
    # a full pool blocks spawn until a slot frees, and still returns before the run
    pool.spawn(eventlet.sleep, 0.05)
    pool.spawn(ran.append, 2)
    assert ran == [1]
    pool.waitall()
    assert ran == [1, 2]


def message(headers):
    return SimpleNamespace(headers=headers)


def test_expired_for():
    now = time.time()
    assert expired_for(message({DEADLINE_HEADER: now + 5}), now) is None
    assert expired_for(message({DEADLINE_HEADER: now - 2}), now) == 2
    # nameko's own clients (service to service) send no deadline: never expired
    assert expired_for(message({}), now) is None
    assert expired_for(message(None), now) is None
    assert expired_for(message({DEADLINE_HEADER: "soon"}), now) is None


def test_signature_check_refuses_what_the_method_cannot_take():
    class Service:
        def method(self, image_id, action="get"):
            pass

    entrypoint = LeanRpc()
    entrypoint.container = SimpleNamespace(service_cls=Service)
    entrypoint.method_name = "method"
    entrypoint.check_signature(["id"], {})
    entrypoint.check_signature([], {"image_id": "id", "action": "x"})
    for args, kwargs in [([], {}), (["a", "b", "c"], {}), (["a"], {"nope": 1})]:
        with pytest.raises(IncorrectSignature):
            entrypoint.check_signature(args, kwargs)
