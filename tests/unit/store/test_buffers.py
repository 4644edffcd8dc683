"""The store replica's budget of upload buffers (services/store/buffers.py): never more
than the budget, an upload waits only for its first buffer, memory let go when idle;
and the upload pipeline holds no more than its share."""

from __future__ import annotations

import hashlib
import os

import eventlet

from services.store.buffers import BufferPool
from services.store.pipeline import UploadPipeline

MiB = 1 << 20


def test_budget_shared_and_waited_for():
    pool = BufferPool(6 * MiB, MiB)
    first = pool.take(4)
    second = pool.take(4)  # what is left: 2
    assert (len(first), len(second)) == (4, 2)
    assert pool.in_use == 6
    waiter = eventlet.spawn(pool.take, 4)
    eventlet.sleep(0.05)
    assert not waiter.dead  # the budget is spent: waits for a first buffer
    pool.give_back(first)
    assert len(waiter.wait()) == 4
    assert pool.in_use == 6


def test_buffers_reused_while_busy_and_let_go_when_idle():
    pool = BufferPool(8 * MiB, MiB)
    busy = pool.take(2)
    done = pool.take(2)
    pool.give_back(done)
    assert len(pool._idle) == 2  # kept for the next upload while one runs
    again = pool.take(2)
    assert {id(b) for b in again} == {id(b) for b in done}
    pool.give_back(again)
    pool.give_back(busy)
    assert pool._idle == [] and pool.in_use == 0


def readinto_of(data: bytes):
    position = 0

    def readinto(buffer: memoryview) -> int:
        nonlocal position
        count = min(len(buffer), len(data) - position)
        buffer[:count] = data[position : position + count]
        position += count
        return count

    return readinto


def test_pipelines_within_one_budget():
    pool = BufferPool(2 * MiB, MiB)
    data = os.urandom(5 * MiB + 123)
    pipelines = [
        UploadPipeline(readinto_of(data), len(data), 1 << 40, "sha512", "raw", buffers=pool)
        for _ in range(3)
    ]
    seen_in_use = []

    def consume(pipeline):
        total = 0
        for chunk in pipeline.chunks():
            seen_in_use.append(pool.in_use)
            total += len(chunk)
            eventlet.sleep(0)
        return total

    threads = [eventlet.spawn(consume, p) for p in pipelines]
    assert [t.wait() for t in threads] == [len(data)] * 3
    assert max(seen_in_use) <= 2 and pool.in_use == 0
    for pipeline in pipelines:
        assert pipeline.result()["os_hash_value"] == hashlib.sha512(data).hexdigest()
