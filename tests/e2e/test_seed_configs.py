"""Every seed's config snippet (tests/integration/seed_configs/, copied from the install
guides and notes Tessera's users follow, with only hosts, paths and the test accounts'
passwords changed) starts Tessera as written: it serves an image list, and warns about
what it does not support. The seeds' stacks start side by side (one module, one Keystone
and one memcached for the guides that use them)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest
import requests

from tests.keystone import ACCOUNTS, Keystone
from tests.memcached import MEMCACHED, Memcached
from tests.stack import MYSQL, MysqlDatabase, Stack, free_port

SNIPPETS = Path(__file__).resolve().parents[1] / "integration" / "seed_configs"


@dataclass
class Seed:
    name: str
    files: tuple[str, ...]
    keystone: bool = False
    mysql: bool = True
    #: where tessera-run's log goes (the snippet's log_file), relative to the stack's dir
    log: str = "stack.log"
    #: what the start-up log must say about the snippet
    warnings: tuple[str, ...] = ()
    stack: Stack | None = field(default=None, repr=False)
    database: MysqlDatabase | None = field(default=None, repr=False)


SEEDS = [
    Seed(
        "000",
        ("000-glance-api.conf", "000-glance-registry.conf"),
        warnings=(
            "[keystone_authtoken] is ignored: [paste_deploy] flavor is not keystone, so "
            "requests are not authenticated (flavor = keystone belongs in [paste_deploy])",
            "the swift store cannot be used: the swift store needs swift_store_auth_address",
        ),
    ),
    Seed(
        "001",
        ("001-glance-api.conf", "001-glance-registry.conf"),
        keystone=True,
        warnings=("[keystone_authtoken] auth_uri is a Glance option Tessera does not support",),
    ),
    Seed(
        "002",
        ("002-glance-api.conf", "002-glance-registry.conf"),
        keystone=True,
        warnings=("[keystone_authtoken] auth_uri is a Glance option Tessera does not support",),
    ),
    Seed(
        "003",
        ("003-glance-api.conf", "003-glance-registry.conf"),
        log="data/log/registry.log",  # the last file's log_file, as oslo.config reads them
        warnings=('Option "sql_connection" from group "DEFAULT" is deprecated',),
    ),
    Seed("004-file-cache", ("004-file-backend.conf", "004-cache.conf"), mysql=False),
    Seed("004-swift", ("004-swift-backend.conf",), mysql=False),
]


def fill(text: str, tokens: dict) -> str:
    for token, value in tokens.items():
        text = text.replace(f"@@{token}@@", value)
    assert "@@" not in text, text
    return text


def start(seed: Seed, workdir: Path, keystone: Keystone | None, memcached) -> Seed:
    seed.database = MysqlDatabase() if seed.mysql else None
    data = workdir / "data"
    tokens = {
        "MYSQL": f"root@{MYSQL['host']}:{MYSQL['port']}/{seed.database.name}"
        if seed.database
        else "",
        "KEYSTONE": keystone.url if keystone else "",
        "MEMCACHED": memcached.server if memcached else "",
        "GLANCE_PASS": ACCOUNTS["glance"].password,
        "DIR": str(data),
        "SWIFT": f"127.0.0.1:{free_port()}",  # nothing listens: the list needs no Swift
    }
    files = []
    for name in seed.files:
        path = workdir / name
        path.write_text(fill((SNIPPETS / name).read_text(), tokens))
        files.append(path)
    if "004-swift-backend.conf" in seed.files:  # its swift_store_config_file
        data.mkdir(parents=True, exist_ok=True)
        (data / "glance-store.conf").write_text(
            fill((SNIPPETS / "004-glance-store.conf").read_text(), tokens)
        )
    seed.stack = Stack(workdir, config_files=tuple(files))
    if seed.keystone:
        seed.stack.ready_path = "/versions"
    seed.stack.start(timeout=120)
    return seed


def stop(seed: Seed) -> None:
    if seed.stack is not None:
        seed.stack.cleanup()
    if seed.database is not None:
        seed.database.delete()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    if MEMCACHED is None:
        pytest.skip("memcached is not installed (make system-deps)")
    keystone = Keystone(domain_name="default").start()  # the guides' domain name
    memcached = Memcached()
    try:
        with ThreadPoolExecutor(len(SEEDS)) as pool:
            futures = [
                pool.submit(
                    start,
                    seed,
                    tmp_path_factory.mktemp(f"seed-{seed.name}"),
                    keystone,
                    memcached if seed.keystone else None,
                )
                for seed in SEEDS
            ]
            errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        yield {seed.name: seed for seed in SEEDS}, keystone
    finally:
        with ThreadPoolExecutor(len(SEEDS)) as pool:  # the stops side by side too
            list(pool.map(stop, SEEDS))
        memcached.stop()
        keystone.stop()


@pytest.mark.parametrize("name", [seed.name for seed in SEEDS])
def test_the_seed_config_serves_an_image_list_and_warns(seeds, name):
    started, keystone = seeds
    seed = started[name]
    headers = {"X-Auth-Token": keystone.token("demo")} if seed.keystone else {}
    resp = requests.get(f"{seed.stack.url}/v2/images", headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["images"] == []
    if seed.keystone:  # /healthcheck and /metrics answer without a token, as documented
        for path in ("/healthcheck", "/metrics"):
            assert requests.get(f"{seed.stack.url}{path}", timeout=30).status_code == 200
        assert requests.get(f"{seed.stack.url}/v2/images", timeout=30).status_code == 401
    log = (seed.stack.workdir / seed.log).read_text()
    for warning in seed.warnings:
        assert warning in log, f"{warning!r} not in the log:\n{log[-4000:]}"


def test_seed_003_old_spellings_are_honoured(seeds):
    """sql_connection in [DEFAULT] is the database, stores = glance.store.filesystem.Store
    is the file store, and [DEFAULT] default_store = file receives the upload."""
    started, _ = seeds
    seed = started["003"]
    url = seed.stack.url
    created = requests.post(
        f"{url}/v2/images",
        json={"name": "cirros", "disk_format": "raw", "container_format": "bare"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    put = requests.put(
        f"{url}/v2/images/{image_id}/file",
        data=b"cirros" * 1000,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert put.status_code == 204, put.text
    assert (seed.stack.datadir / image_id).stat().st_size == 6000
    conn = pymysql.connect(**MYSQL, database=seed.database.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM images WHERE id = %s", (image_id,))
            assert cur.fetchone() == ("active",)
    finally:
        conn.close()
