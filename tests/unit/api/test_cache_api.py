"""The cache API and the version list with the image cache off and on (the app alone:
these answers need no service)."""

from __future__ import annotations

import pytest

from services.api.app import create_app
from services.common.config import load_config


def client(tmp_path, text: str = ""):
    path = tmp_path / "t.conf"
    path.write_text(f"[DEFAULT]\ndata_dir = {tmp_path}\n{text}")
    return create_app(load_config(["--config-file", str(path)]), rpc_client=object()).test_client()


def version_ids(app) -> list[str]:
    return [v["id"] for v in app.get("/versions").get_json()["versions"] if v["id"] >= "v2"]


def test_cache_off(tmp_path):
    app = client(tmp_path)
    resp = app.get("/v2/cache")
    assert resp.status_code == 404
    assert resp.get_json()["error"]["message"] == "Caching via API is not supported at this site."
    assert (
        app.get("/v2/cache", headers={"X-Roles": "member", "X-Project-Id": "p"}).status_code == 403
    )
    # Glance 33 without the cache (and without enabled_backends)
    assert version_ids(app) == [f"v2.{n}" for n in (17, 15, 9, 7, 6, 5, 4, 3, 2, 1, 0)]


@pytest.mark.parametrize(
    "text",
    [
        "image_cache_dir = {dir}",
        "[cache]\nenabled = true\ndirectory = {dir}",
        "[paste_deploy]\nflavor = cachemanagement",
    ],
)
def test_cache_on(tmp_path, text):
    app = client(tmp_path, text.format(dir=tmp_path / "c"))
    assert app.get("/v2/cache").get_json() == {"cached_images": [], "queued_images": []}
    versions = app.get("/versions").get_json()["versions"]
    assert versions[0]["id"] == "v2.18" and versions[0]["status"] == "CURRENT"
    assert version_ids(app) == [f"v2.{n}" for n in (18, 17, 16, 15, 14, 9, 7, 6, 5, 4, 3, 2, 1, 0)]
    assert app.post("/v2/cache/prune").get_json() == {
        "total_files_pruned": 0,
        "total_bytes_pruned": 0,
    }
    bad = app.delete("/v2/cache", headers={"x-image-cache-clear-target": "everything"})
    assert bad.status_code == 400


def test_keystone_cachemanagement_flavor_is_keystone_auth_with_the_cache(tmp_path):
    app = client(
        tmp_path,
        "[paste_deploy]\nflavor = keystone+cachemanagement\n"
        "[keystone_authtoken]\nwww_authenticate_uri = http://127.0.0.1:1/v3\n"
        "auth_url = http://127.0.0.1:1/v3\n",
    )
    assert app.get("/v2/cache").status_code == 401  # auth_token: no token, no answer
    assert version_ids(app)[0] == "v2.18"
