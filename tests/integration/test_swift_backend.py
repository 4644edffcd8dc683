"""The Swift store on a real all-in-one Swift (tests/swift_aio.py): the shared backend
contract, with and without large objects, and what is particular to Swift: segments,
their checks and their removal, resumed reads, re-authentication, typed errors, the
reference file and locations without credentials."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest
import urllib3
from swiftclient.client import ClientException, Connection

from services.common.config import build_config
from services.store.backends.base import DataNotFound, StorageFull, StoreUnavailable
from services.store.backends.swift import SwiftStore
from services.store.backends.swift_config import (
    BadSwiftConfig,
    load_swift_reference,
    swift_opts,
    swift_store_from_config,
)
from tests.unit.store.contract import (
    Boom,
    WritableBackendContract,
    chunks_of,
    failing_after,
)

# The first test also waits for Swift to start: on a fresh machine that includes
# building its venv (about a minute).
pytestmark = pytest.mark.timeout(300)

KiB, MiB = 1 << 10, 1 << 20
SEGMENT = 512 * KiB


@pytest.fixture(scope="session")
def admin(swift):
    """A plain swiftclient connection as the account's owner, to look behind the store."""
    conn = Connection(swift.auth_url, swift.user, swift.key, auth_version="1", retries=1)
    yield conn
    conn.close()


def names(admin, container: str, prefix: str = "") -> list[str]:
    try:
        return sorted(
            o["name"] for o in admin.get_container(container, prefix=prefix, full_listing=True)[1]
        )
    except ClientException as exc:
        if exc.http_status == 404:
            return []
        raise


@pytest.fixture
def container(admin):
    """A container name of the test's own; whatever is left in it goes afterwards."""
    name = f"images-{uuid.uuid4().hex[:10]}"
    yield name
    for obj in names(admin, name):
        admin.delete_object(name, obj)
    try:
        admin.delete_container(name)
    except ClientException as exc:
        if exc.http_status != 404:
            raise


@pytest.fixture
def make_store(swift, container):
    def make(**overrides) -> SwiftStore:
        options = {
            "auth_address": swift.auth_url,
            "user": swift.user,
            "key": swift.key,
            "auth_version": "1",
            "container": container,
            "create_container_on_put": True,
            "large_object_size": MiB,
            "large_object_chunk_size": SEGMENT,
            "retry_get_count": 2,
            "connection_retries": 1,
            **overrides,
        }
        return SwiftStore(**options)

    return make


@pytest.fixture
def leftovers(admin, container):
    return lambda image_id: names(admin, container, prefix=image_id)


def add(
    store: SwiftStore,
    data: bytes,
    image_id: str | None = None,
    size: int | None = -1,
    upload_id: str = "u1",
):
    image_id = image_id or str(uuid.uuid4())
    stored = store.add(
        image_id, chunks_of(data), len(data) if size == -1 else size, upload_id=upload_id
    )
    return image_id, stored


class TestSwiftStore(WritableBackendContract):
    """Large objects from 1 MiB, in 512 KiB segments: the contract's 3 MiB images and
    those of unknown size are SLOs."""

    @pytest.fixture
    def backend(self, make_store):
        return make_store()


class TestSwiftStoreWithoutLargeObjects(WritableBackendContract):
    """Every image, of known size or not, in one streamed PUT."""

    # a one-PUT object takes the image's name as its PUT ends, before any confirm
    test_an_upload_refused_before_naming_leaves_the_image_data = None

    @pytest.fixture
    def backend(self, make_store):
        return make_store(large_object_size=None)

    def test_nothing_is_segmented(self, backend, leftovers):
        image_id, _ = add(backend, os.urandom(3 * MiB), size=None)
        assert leftovers(image_id) == [image_id]


# ------------------------------------------------------------------ large objects


def test_large_image_is_an_slo_of_verified_segments(make_store, admin, container, leftovers):
    store = make_store()
    data = os.urandom(2 * MiB + 100)
    image_id, stored = add(store, data, upload_id="up7")
    assert leftovers(image_id) == [image_id] + [f"{image_id}-up7-{i:05d}" for i in (1, 2, 3, 4, 5)]
    headers = admin.head_object(container, image_id)
    assert headers["x-static-large-object"] == "True"
    assert int(headers["content-length"]) == len(data) == stored.size
    _, manifest = admin.get_object(container, image_id, query_string="multipart-manifest=get")
    segments = json.loads(manifest)
    assert [s["bytes"] for s in segments] == [SEGMENT] * 4 + [100]
    for i, segment in enumerate(segments):
        piece = data[i * SEGMENT : (i + 1) * SEGMENT]
        assert segment["hash"] == hashlib.md5(piece).hexdigest()
    assert b"".join(store.get(stored.location, SEGMENT - 3, 10)) == data[SEGMENT - 3 : SEGMENT + 7]
    assert b"".join(store.get(stored.location, len(data) + 5)) == b""  # past the end


def test_image_of_exactly_the_threshold_is_one_object(make_store, leftovers):
    image_id, _ = add(make_store(), os.urandom(MiB))
    assert leftovers(image_id) == [image_id]


def test_empty_image_of_unknown_size_is_one_empty_object(make_store, leftovers):
    store = make_store()
    image_id, stored = add(store, b"", size=None)
    assert leftovers(image_id) == [image_id]
    assert stored.size == 0 and b"".join(store.get(stored.location)) == b""


def test_segment_with_a_wrong_etag_fails_the_add_and_leaves_nothing(
    make_store, monkeypatch, leftovers
):
    store = make_store()
    real_put = Connection.put_object
    seen = []

    def put_object(self, container, obj, contents, *args, **kwargs):
        etag = real_put(self, container, obj, contents, *args, **kwargs)
        seen.append(obj)
        return "0" * 32 if obj.endswith("-00002") else etag  # Swift got other bytes

    monkeypatch.setattr(Connection, "put_object", put_object)
    image_id = str(uuid.uuid4())
    with pytest.raises(StoreUnavailable, match="00002 with ETag"):
        store.add(image_id, chunks_of(os.urandom(3 * MiB)), 3 * MiB, upload_id="u")
    assert seen == [f"{image_id}-u-00001", f"{image_id}-u-00002"]  # stopped there
    assert leftovers(image_id) == []


def test_single_put_with_a_wrong_etag_fails_too(make_store, monkeypatch, leftovers):
    store = make_store()
    real_put = Connection.put_object
    monkeypatch.setattr(
        Connection, "put_object", lambda *a, **kw: (real_put(*a, **kw), "f" * 32)[1]
    )
    image_id = str(uuid.uuid4())
    with pytest.raises(StoreUnavailable, match="ETag"):
        store.add(image_id, chunks_of(b"abc"), 3, upload_id="u")
    assert leftovers(image_id) == []


def test_failed_large_add_removes_segments_and_manifest(make_store, monkeypatch, leftovers):
    """The manifest went in but its answer was lost: it goes too."""
    store = make_store()
    real_put = Connection.put_object

    def put_object(self, container, obj, contents, *args, **kwargs):
        etag = real_put(self, container, obj, contents, *args, **kwargs)
        if kwargs.get("query_string") == "multipart-manifest=put":
            raise ClientException("connection lost", http_status=None)
        return etag

    monkeypatch.setattr(Connection, "put_object", put_object)
    image_id = str(uuid.uuid4())
    with pytest.raises(StoreUnavailable):
        store.add(image_id, chunks_of(os.urandom(2 * MiB)), 2 * MiB, upload_id="u")
    assert leftovers(image_id) == []


@pytest.mark.parametrize("large", [True, False], ids=["slo", "single"])
def test_error_of_the_source_leaves_add_unchanged(make_store, leftovers, large):
    """The uploading client went away: its error, not a store failure, and no leftovers."""
    store = make_store(large_object_size=MiB if large else None)

    def client_gone():
        yield os.urandom(MiB)
        yield os.urandom(MiB)
        raise ConnectionResetError("client disconnected")

    image_id = str(uuid.uuid4())
    with pytest.raises(ConnectionResetError):
        store.add(image_id, client_gone(), 3 * MiB, upload_id="u")
    assert leftovers(image_id) == []


def test_delete_removes_the_segments(make_store, leftovers):
    store = make_store()
    image_id, stored = add(store, os.urandom(3 * MiB), size=None)
    assert len(leftovers(image_id)) == 7
    store.delete(stored.location)
    assert leftovers(image_id) == []
    with pytest.raises(DataNotFound):
        store.size(stored.location)


def test_delete_of_a_glance_dlo_removes_its_segments(make_store, admin, container, leftovers):
    """glance_store's own large objects: segments ``<id>-00001`` and a DLO manifest."""
    store = make_store()
    image_id = str(uuid.uuid4())
    admin.put_container(container)
    for i in (1, 2):
        admin.put_object(container, f"{image_id}-{i:05d}", b"x" * 10)
    admin.put_object(
        container, image_id, b"", headers={"X-Object-Manifest": f"{container}/{image_id}-"}
    )
    location = f"swift+config://ref1@/{container}/{image_id}"
    assert b"".join(store.get(location)) == b"x" * 20
    store.delete(location)
    assert leftovers(image_id) == []


# ---------------------------------------------------------------- delete_partial


def test_delete_partial_removes_what_a_dead_writer_left(make_store, monkeypatch, leftovers):
    store = make_store()
    image_id = str(uuid.uuid4())
    # a writer that dies takes its clean-up with it
    monkeypatch.setattr(SwiftStore, "_remove_after_failure", lambda *args: None)
    with pytest.raises(Boom):
        store.add(image_id, failing_after(os.urandom(3 * MiB), 2), 3 * MiB, upload_id="dead")
    assert leftovers(image_id) == [f"{image_id}-dead-{i:05d}" for i in (1, 2, 3, 4)]
    monkeypatch.undo()
    other_id, _ = add(store, os.urandom(2 * MiB), upload_id="dead")  # another image
    store.delete_partial(image_id, "dead")
    assert leftovers(image_id) == []
    assert len(leftovers(other_id)) == 5


def test_delete_partial_removes_a_complete_image_of_that_upload_only(make_store, leftovers):
    """The writer stored everything but died before it could report it."""
    store = make_store()
    image_id, stored = add(store, os.urandom(2 * MiB), upload_id="u1")
    store.delete_partial(image_id, "u2")  # not the upload that wrote it
    assert len(leftovers(image_id)) == 5
    store.delete_partial(image_id, "u1")
    assert leftovers(image_id) == []
    image_id, _ = add(store, b"small", upload_id="u3")
    store.delete_partial(image_id, "u3")
    assert leftovers(image_id) == []


# --------------------------------------------------------------------- reading


class FlakyBody:
    """A response body that breaks after ``good`` chunks, as a dropped connection does
    (or, ``quietly``, just ends there, as a connection closed early)."""

    def __init__(self, body, good: int, quietly: bool = False):
        self.body, self.good, self.quietly = body, good, quietly

    def __iter__(self):
        return self

    def __next__(self):
        if self.good == 0:
            if self.quietly:
                raise StopIteration
            raise urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead")
        self.good -= 1
        return next(self.body)

    def close(self):
        self.body.close()


@pytest.fixture
def flaky_reads(monkeypatch):
    """Connection.get_object whose first ``failures`` bodies break after one chunk;
    records the Range of every request."""
    real_get = Connection.get_object
    ranges, state = [], {"failures": 1, "before_resume": None, "quietly": False}

    def get_object(self, container, obj, *args, **kwargs):
        ranges.append((kwargs.get("headers") or {}).get("Range"))
        if len(ranges) > 1 and state["before_resume"]:
            state["before_resume"]()
        headers, body = real_get(self, container, obj, *args, **kwargs)
        if state["failures"] > 0:
            state["failures"] -= 1
            body = FlakyBody(body, good=1, quietly=state["quietly"])
        return headers, body

    monkeypatch.setattr(Connection, "get_object", get_object)
    return ranges, state


def test_interrupted_read_resumes_from_the_next_byte(make_store, flaky_reads):
    ranges, state = flaky_reads
    store = make_store(retry_get_count=1)
    data = os.urandom(3 * MiB + 17)
    _, stored = add(store, data)
    ranges.clear()
    assert b"".join(store.get(stored.location)) == data
    assert ranges == ["bytes=0-", f"bytes={MiB}-"]  # one 1 MiB chunk came before the break

    state["failures"] = 1
    ranges.clear()
    assert b"".join(store.get(stored.location, 100, 2 * MiB)) == data[100 : 100 + 2 * MiB]
    assert ranges == [f"bytes=100-{100 + 2 * MiB - 1}", f"bytes={100 + MiB}-{100 + 2 * MiB - 1}"]


def test_read_that_ends_early_resumes_too(make_store, flaky_reads):
    ranges, state = flaky_reads
    store = make_store(retry_get_count=1)
    data = os.urandom(3 * MiB)
    _, stored = add(store, data)
    state.update(failures=1, quietly=True)
    ranges.clear()
    assert b"".join(store.get(stored.location)) == data
    assert ranges == ["bytes=0-", f"bytes={MiB}-"]
    state.update(failures=2)
    with pytest.raises(StoreUnavailable):  # never a silently short image
        b"".join(store.get(stored.location))


def test_read_gives_up_after_retry_get_count(make_store, flaky_reads):
    ranges, state = flaky_reads
    store = make_store(retry_get_count=1)
    _, stored = add(store, os.urandom(3 * MiB))
    state["failures"] = 2
    ranges.clear()
    with pytest.raises(StoreUnavailable):
        b"".join(store.get(stored.location))
    assert len(ranges) == 2

    store = make_store(retry_get_count=0)  # Glance's default: no retry
    state["failures"] = 1
    with pytest.raises(StoreUnavailable):
        b"".join(store.get(stored.location))


def test_read_does_not_resume_into_another_object(make_store, flaky_reads, admin, container):
    ranges, state = flaky_reads
    store = make_store(retry_get_count=3)
    image_id, stored = add(store, os.urandom(2 * MiB), upload_id="u1")
    state["before_resume"] = lambda: admin.put_object(container, image_id, b"y" * 3 * MiB)
    with pytest.raises(StoreUnavailable, match="changed"):
        b"".join(store.get(stored.location))


def test_missing_object_and_foreign_locations_are_data_not_found(make_store):
    store = make_store()
    with pytest.raises(DataNotFound):
        store.get(store._location("no-such-image"))
    with pytest.raises(DataNotFound):
        store.size(store._location("no-such-image"))
    store.delete(store._location("no-such-image"))  # gone already: fine
    with pytest.raises(DataNotFound):
        store.get("file:///etc/passwd")


# ------------------------------------------------------------ auth and containers


def test_expired_token_is_renewed_between_segments_and_before_reads(make_store, monkeypatch):
    store = make_store()
    connections = []
    real_new = SwiftStore._new_connection

    def new_connection(self):
        conn = real_new(self)
        connections.append(conn)
        return conn

    monkeypatch.setattr(SwiftStore, "_new_connection", new_connection)
    data = os.urandom(2 * MiB)

    def expiring():  # the token expires while the first segment is on its way
        for i, chunk in enumerate(chunks_of(data, 256 * KiB)):
            if i == 1:
                for conn in connections:
                    conn.token = "AUTH_tkexpired"
            yield chunk

    image_id = str(uuid.uuid4())
    stored = store.add(image_id, expiring(), len(data), upload_id="u")
    assert stored.size == len(data)
    for conn in connections:
        conn.token = "AUTH_tkexpired"
    assert b"".join(store.get(stored.location)) == data


def test_container_is_created_on_put_when_enabled(make_store, admin, container):
    store = make_store(create_container_on_put=True)
    with pytest.raises(ClientException):
        admin.head_container(container)
    _, stored = add(store, b"data")
    admin.head_container(container)
    assert b"".join(store.get(stored.location)) == b"data"


def test_missing_container_without_create_on_put_is_unavailable(make_store, admin, container):
    store = make_store(create_container_on_put=False)
    with pytest.raises(StoreUnavailable, match="does not exist"):
        add(store, b"data")
    with pytest.raises(ClientException):
        admin.head_container(container)


@pytest.mark.parametrize("large", [True, False], ids=["slo", "single"])
def test_container_quota_is_storage_full(make_store, admin, container, leftovers, large):
    store = make_store(large_object_size=MiB if large else None)
    admin.put_container(container)
    admin.put_object(container, "filler", b"f" * 2000)
    admin.post_container(container, {"X-Container-Meta-Quota-Bytes": "1000"})
    image_id = str(uuid.uuid4())
    with pytest.raises(StorageFull):
        store.add(image_id, chunks_of(os.urandom(2 * MiB)), None, upload_id="u")
    assert leftovers(image_id) == []


def test_wrong_key_is_unavailable(make_store):
    store = make_store(key="wrong")
    with pytest.raises(StoreUnavailable, match="credentials"):
        add(store, b"data")
    with pytest.raises(StoreUnavailable):
        store.get(store._location(str(uuid.uuid4())))


def test_user_without_rights_is_unavailable(make_store, admin, container):
    admin.put_container(container)
    store = make_store(user="test:tester3", key="testing3")  # no ACLs: 403
    with pytest.raises(StoreUnavailable):
        add(store, b"data")


def test_unreachable_swift_is_unavailable(make_store):
    from tests.stack import free_port

    store = make_store(
        auth_address=f"http://127.0.0.1:{free_port()}/auth/v1.0", connection_retries=0
    )
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        add(store, b"data")
    with pytest.raises(StoreUnavailable):
        store.delete_partial(str(uuid.uuid4()), "u")


# ----------------------------------------------------- locations and configuration


def test_locations_carry_no_credentials(make_store, swift, container):
    store = make_store()
    for data in (b"small", os.urandom(2 * MiB)):
        image_id, stored = add(store, data)
        assert stored.location == f"swift+http://{container}/{image_id}"
        for secret in (swift.user, swift.key, "tester", "127.0.0.1", "auth"):
            assert secret not in stored.location
    assert swift.key not in repr(store)
    assert (
        make_store(auth_address="https://swift.example/auth/v1.0")._location("x")
        == f"swift+https://{container}/x"
    )


def test_glance_swift_locations_are_read_with_the_stores_credentials(make_store, swift, container):
    store = make_store()
    image_id, _ = add(store, b"glance-era image")
    host = swift.auth_url.split("://")[1]
    for location in (
        f"swift+http://test%3Atester:secret@{host}/{container}/{image_id}",
        f"swift+config://ref1@/{container}/{image_id}",
        f"swift://{container}/{image_id}",
    ):
        assert b"".join(store.get(location)) == b"glance-era image"


def glance_conf(**glance_store):
    conf = build_config()
    conf.register_opts(swift_opts, group="glance_store")
    conf(args=[], default_config_files=[], default_config_dirs=[])
    for name, value in glance_store.items():
        conf.set_override(name, value, group="glance_store")
    return conf


def test_glance_option_names_and_defaults():
    g = glance_conf().glance_store
    assert (
        g.swift_store_container,
        g.swift_store_create_container_on_put,
        g.swift_store_large_object_size,
        g.swift_store_large_object_chunk_size,
        g.swift_store_endpoint_type,
        g.swift_store_retry_get_count,
        g.default_swift_reference,
        g.swift_store_auth_version,
        g.swift_store_auth_insecure,
        g.swift_store_config_file,
    ) == ("glance", False, 5120, 200, "publicURL", 0, "ref1", "3", False, None)
    assert {o.name for o in swift_opts if o.secret} == {"swift_store_user", "swift_store_key"}
    with pytest.raises(BadSwiftConfig, match="swift_store_auth_address"):
        swift_store_from_config(glance_conf())


def test_store_from_options(swift, container):
    store = swift_store_from_config(
        glance_conf(
            swift_store_auth_address=swift.auth_url,
            swift_store_user=swift.user,
            swift_store_key=swift.key,
            swift_store_auth_version="1",
            swift_store_container=container,
            swift_store_create_container_on_put=True,
            swift_store_large_object_size=1,
            swift_store_large_object_chunk_size=1,
            swift_store_retry_get_count=3,
        )
    )
    assert (store.large_object_size, store.large_object_chunk_size, store.retry_get_count) == (
        MiB,
        MiB,
        3,
    )
    image_id, stored = add(store, os.urandom(MiB + 1))
    assert store.size(stored.location) == MiB + 1


def test_store_from_a_reference_file(swift, container, tmp_path, leftovers):
    path = tmp_path / "glance-swift.conf"
    path.write_text(
        "[ref1]\nuser = nobody:nobody\nkey = nothing\nauth_address = http://127.0.0.1:9/\n\n"
        f"[aio]\nuser = '{swift.user}'\nkey = {swift.key}\nauth_address = {swift.auth_url}\n"
        "auth_version = 1\n"
    )
    store = swift_store_from_config(
        glance_conf(
            swift_store_config_file=str(path),
            default_swift_reference="aio",
            swift_store_container=container,
            swift_store_create_container_on_put=True,
            # ignored when a reference file is given
            swift_store_user="ignored",
            swift_store_key="ignored",
        )
    )
    image_id, stored = add(store, b"from the reference file")
    assert b"".join(store.get(stored.location)) == b"from the reference file"
    assert leftovers(image_id) == [image_id]


def test_reference_file_parsing(tmp_path):
    path = tmp_path / "glance-swift.conf"
    path.write_text(
        "[ref1]\nuser = service:glance\nkey = 'p%ss'\nauth_address = https://ks:5000/v3\n"
        "project_domain_name = Default\n\n[partial]\nuser = someone\n"
    )
    assert load_swift_reference(str(path), "ref1") == {
        "auth_address": "https://ks:5000/v3",
        "user": "service:glance",
        "key": "p%ss",
        "auth_version": "3",
        "user_domain_id": "default",
        "user_domain_name": None,
        "project_domain_id": None,
        "project_domain_name": "Default",
    }
    with pytest.raises(BadSwiftConfig, match="not a section"):
        load_swift_reference(str(path), "ref2")
    with pytest.raises(BadSwiftConfig, match="lacks auth_address, key"):
        load_swift_reference(str(path), "partial")
    with pytest.raises(BadSwiftConfig, match="cannot read"):
        load_swift_reference(str(tmp_path / "missing.conf"), "ref1")


def test_keystone_v3_connection_arguments():
    store = SwiftStore(
        "keystone:5000/v3",
        "service:glance",
        "secret",
        auth_version="3",
        region="RegionTwo",
        endpoint_type="internalURL",
        user_domain_id="udom",
        project_domain_name="Default",
    )
    args = store._connection_args
    assert args["authurl"] == "https://keystone:5000/v3"
    assert (args["user"], args["tenant_name"], args["auth_version"]) == ("glance", "service", "3")
    assert args["os_options"] == {
        "endpoint_type": "internalURL",
        "service_type": "object-store",
        "region_name": "RegionTwo",
        "user_domain_id": "udom",
        "project_domain_name": "Default",
    }
    assert store._location("x") == "swift+https://glance/x"
