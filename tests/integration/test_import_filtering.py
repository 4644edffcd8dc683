"""The URL filter with Glance's default [import_filtering_opts] (the shared stack, on
SQLite and MariaDB): loopback, link-local, private, encoded hosts, other schemes and
ports are a 400 at /import, before anything runs."""

from __future__ import annotations

from tests.integration.test_images_api import error_of
from tests.integration.test_import import new_image, web_import


def test_filtered_by_default_at_import(stack, api):
    """With Glance's default filter (the shared stack): 400 at /import."""
    image_id = new_image(api)
    for uri in (
        "http://127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://192.168.0.1/x",
        "file:///etc/passwd",
        "ftp://example.com/x",
        "http://example.com:8080/x",
        "http://2130706433/x",
    ):
        assert "does not pass filtering" in error_of(web_import(api, image_id, uri), 400), uri
    assert api.get(f"/v2/images/{image_id}").json()["status"] == "queued"
