"""The store side of the scrubber (services/store/scrubber.py) with a file store and a
registry double that records the calls: data deleted before anything is recorded, a
failed location left pending, a lost claim given up, every image due walked past."""

from __future__ import annotations

from types import SimpleNamespace

from nameko.containers import ServiceContainer

from services.common.config import load_config
from services.common.errors import Conflict, StoreUnavailable
from services.store import scrubber
from services.store.backends.file import FileStore
from services.store.backends.http import HttpStore
from services.store.dependencies import Backends


class Registry:
    """Hands out ``batches`` of claims and records finish_scrub calls."""

    def __init__(self, batches, lost=()):
        self.batches = list(batches)
        self.lost = set(lost)
        self.calls = []

    def claim_scrub(self, limit, after):
        self.calls.append(("claim", limit, after))
        return self.batches.pop(0)

    def renew_scrub(self, image_id, token):
        return token

    def finish_scrub(self, image_id, token, scrubbed):
        self.calls.append(("finish", image_id, token, scrubbed))
        if image_id in self.lost:
            raise Conflict(f"The scrubber's claim on image {image_id} was lost.")
        return True


def backends(tmp_path) -> Backends:
    return Backends({"file": FileStore(tmp_path), "http": HttpStore()}, "file")


def claim(image_id, *urls):
    return {
        "image_id": image_id,
        "token": "t1",
        "locations": [{"id": n, "url": url} for n, url in enumerate(urls)],
    }


def conf(pool: int = 2):
    return SimpleNamespace(scrub_pool_size=pool, store=SimpleNamespace(scrub_lease_seconds=60))


def test_the_data_is_deleted_before_the_registry_hears_of_it(tmp_path):
    data = tmp_path / "img-1"
    data.write_bytes(b"abc")
    seen = []

    class Watching(Registry):
        def finish_scrub(self, image_id, token, scrubbed):
            seen.append(data.exists())
            return super().finish_scrub(image_id, token, scrubbed)

    registry = Watching([{"claims": [claim("img-1", f"file://{data}")], "next": None}])
    assert scrubber.run(registry, backends(tmp_path), conf()) == 1
    assert seen == [False]
    assert registry.calls[-1] == ("finish", "img-1", "t1", [0])


def test_data_already_gone_is_scrubbed_and_http_data_is_not_ours(tmp_path):
    registry = Registry([{"claims": [], "next": None}])
    claimed = claim("img-2", f"file://{tmp_path}/never-written", "http://example.com/x")
    assert scrubber.scrub_image(registry, backends(tmp_path), claimed, 60)
    assert registry.calls == [("finish", "img-2", "t1", [0, 1])]


def test_a_location_that_cannot_be_deleted_stays_pending(tmp_path, monkeypatch):
    def refuse(location):
        raise StoreUnavailable("The file store is not writable: Permission denied.")

    store = backends(tmp_path)
    monkeypatch.setattr(store.default, "delete", refuse)
    registry = Registry([])
    scrubber.scrub_image(registry, store, claim("img-3", f"file://{tmp_path}/a"), 60)
    assert registry.calls == [("finish", "img-3", "t1", [])]  # nothing scrubbed: still pending


def test_a_lost_claim_is_given_up(tmp_path):
    registry = Registry([], lost={"img-4"})
    assert not scrubber.scrub_image(
        registry, backends(tmp_path), claim("img-4", f"file://{tmp_path}/a"), 60
    )


def test_an_image_that_fails_unexpectedly_does_not_end_the_run(tmp_path):
    class Flaky(Registry):
        def finish_scrub(self, image_id, token, scrubbed):
            if image_id == "a":
                raise RuntimeError("registry gone")
            return super().finish_scrub(image_id, token, scrubbed)

    registry = Flaky([{"claims": [claim("a"), claim("b")], "next": None}])
    assert scrubber.run(registry, backends(tmp_path), conf()) == 1
    assert ("finish", "b", "t1", []) in registry.calls


def test_a_run_walks_every_batch_with_the_cursor(tmp_path):
    registry = Registry(
        [
            {"claims": [claim("a"), claim("b")], "next": ["2026-11-30T07:00:00.000000", "b"]},
            {"claims": [], "next": ["2026-11-30T07:00:01.000000", "d"]},  # taken elsewhere
            {"claims": [claim("e")], "next": None},
        ]
    )
    assert scrubber.run(registry, backends(tmp_path), conf()) == 3
    claims = [call for call in registry.calls if call[0] == "claim"]
    assert claims == [
        ("claim", 2, None),
        ("claim", 2, ["2026-11-30T07:00:00.000000", "b"]),
        ("claim", 2, ["2026-11-30T07:00:01.000000", "d"]),
    ]


class Service:
    name = "store"

    @scrubber.scrub_timer
    def scrub(self):
        pass


def test_the_timer_wakes_every_wakeup_time():
    for wakeup, interval in (("300", 300), ("0", scrubber.MIN_WAKEUP)):
        conf = load_config([])
        conf.set_override("wakeup_time", int(wakeup))
        container = ServiceContainer(Service, {"TESSERA_CONF": conf, "AMQP_URI": "memory://"})
        (timer,) = [e for e in container.entrypoints if isinstance(e, scrubber.ScrubTimer)]
        timer.setup()
        assert timer.interval == interval
