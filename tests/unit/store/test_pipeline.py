"""The upload pipeline: one pass that sizes, hashes and checks the bytes, reading ahead
into a ring of reused buffers while the backend consumes them."""

from __future__ import annotations

import gc
import hashlib
import io

import eventlet
import greenlet
import pytest

from services.store import pipeline as pipeline_module
from services.store.backends.base import ImageTooLarge, SizeMismatch
from services.store.pipeline import UploadPipeline
from tests.conftest import random_image

MiB = 1 << 20


def readinto_of(data: bytes, trickle: int | None = None):
    """A socket-like readinto over ``data``; with ``trickle`` it hands out at most that
    many bytes per call, as a slow sender would."""
    source = io.BytesIO(data)

    def readinto(buffer: memoryview) -> int:
        return source.readinto(buffer[:trickle] if trickle else buffer)

    return readinto


def consume(pipeline: UploadPipeline, slow: bool = False) -> bytes:
    """What a backend does: use each chunk (here: copy it away) before asking for the
    next one; a ``slow`` backend lets the reader run meanwhile, as a write does."""
    out = bytearray()
    for chunk in pipeline.chunks():
        if slow:
            eventlet.sleep(0.001)
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("size", [0, 1, MiB, 4 * MiB, 4 * MiB + 1, 37 * MiB + 5])
def test_bytes_and_both_hashes_are_exact(size):
    data = random_image(size)
    pipeline = UploadPipeline(readinto_of(data), size, 1 << 40, "sha512", "raw")
    assert consume(pipeline) == data
    assert pipeline.result() == {
        "size": size,
        "checksum": hashlib.md5(data).hexdigest(),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(data).hexdigest(),
        "virtual_size": size or None,  # as Glance, an empty image's stays unset
    }


@pytest.mark.parametrize("slow", [False, True])
def test_reused_buffers_never_mix_chunks(slow, monkeypatch):
    # small buffers and a trickling sender: many turns of the ring, partly filled chunks
    monkeypatch.setattr(pipeline_module, "CHUNK", 64 << 10)
    data = random_image(5 * MiB + 3)
    pipeline = UploadPipeline(readinto_of(data, trickle=50_000), None, 1 << 40, "sha256", None)
    assert consume(pipeline, slow=slow) == data
    assert pipeline.result()["os_hash_value"] == hashlib.sha256(data).hexdigest()
    assert pipeline.result()["checksum"] == hashlib.md5(data).hexdigest()


def test_short_body_is_a_size_mismatch():
    pipeline = UploadPipeline(readinto_of(b"x" * 100), 200, 1 << 40, "sha512", None)
    with pytest.raises(SizeMismatch, match="100 of the declared 200"):
        consume(pipeline)


def test_more_than_declared_is_a_size_mismatch():
    pipeline = UploadPipeline(readinto_of(b"x" * 300), 200, 1 << 40, "sha512", None)
    with pytest.raises(SizeMismatch, match="More data"):
        consume(pipeline)


def test_over_the_cap_stops_as_the_bytes_arrive():
    data = random_image(9 * MiB)
    pipeline = UploadPipeline(readinto_of(data), None, 5 * MiB, "sha512", None)
    with pytest.raises(ImageTooLarge):
        consume(pipeline)
    assert pipeline.size <= 5 * MiB + pipeline_module.CHUNK


def test_declared_size_over_the_cap_is_refused_before_reading():
    with pytest.raises(ImageTooLarge):
        UploadPipeline(readinto_of(b""), 10 * MiB, 5 * MiB, "sha512", None)


def test_a_broken_sender_reaches_the_backend():
    def broken(buffer):
        raise ConnectionResetError("client went away")

    pipeline = UploadPipeline(broken, 10, 1 << 40, "sha512", None)
    with pytest.raises(ConnectionResetError):
        consume(pipeline)


def _live_greenthreads() -> int:
    return sum(
        1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and obj and not obj.dead
    )


def test_a_backend_that_stops_early_leaves_no_reader_or_hash_lane_behind():
    data = random_image(20 * MiB)
    before = _live_greenthreads()
    pipeline = UploadPipeline(readinto_of(data), len(data), 1 << 40, "sha512", None)
    chunks = pipeline.chunks()
    next(chunks)
    assert _live_greenthreads() == before + 3  # the reader and two hash lanes
    chunks.close()  # the backend failed and dropped the iterator
    eventlet.sleep(0.01)
    assert _live_greenthreads() == before
