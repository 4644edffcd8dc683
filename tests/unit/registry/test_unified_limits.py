"""Unified limits in the registry: the usage counted for each of Glance's four resources,
and a Keystone that cannot be reached (a 503 that says why, never a 500). The enforcement
against a real Keystone is tests/e2e/test_unified_limits.py."""

from __future__ import annotations

import pytest

from services.common.config import load_config
from services.common.errors import QuotaExceeded, ServiceUnavailable
from services.registry import unified_limits
from services.registry.models import ImageLocation, ImageProperty, utcnow
from tests.stack import free_port
from tests.unit.registry.builders import OTHER, OWNER

MIB = 1 << 20


def usage(session) -> dict:
    return {name: count(session, OWNER.project_id) for name, count in unified_limits.USAGE.items()}


def test_usage_by_resource(session, make_image):
    active = make_image()
    active.status, active.size = "active", 3 * MIB
    for url in ("file:///a", "file:///b"):  # stored twice: counts twice, as in Glance
        active.locations.append(ImageLocation(value=url, created_at=utcnow()))
    active.locations.append(ImageLocation(value="file:///c", status="deleted", created_at=utcnow()))
    staged = make_image()
    staged.status, staged.size = "uploading", 2 * MIB
    saving = make_image()
    saving.status = "saving"
    copying = make_image()  # an active image being copied to more stores
    copying.status, copying.size = "active", MIB
    copying.properties.append(ImageProperty(name="os_glance_importing_to_stores", value="b"))
    copying.locations.append(ImageLocation(value="file:///d", created_at=utcnow()))
    gone = make_image()
    gone.status, gone.size = "killed", 5 * MIB
    make_image(OTHER)
    session.commit()
    assert usage(session) == {
        "image_size_total": 3 * 2 + 1,
        "image_stage_total": 2 + 1,
        "image_count_total": 4,
        "image_count_uploading": 3,
    }


def test_off_by_default(session):
    conf = load_config([])
    assert conf.use_keystone_limits is False
    unified_limits.enforce(session, conf, OWNER.project_id, {"image_count_total": 1})


@pytest.mark.timeout(60)
def test_keystone_unreachable_is_503(session, tmp_path):
    path = tmp_path / "limits.conf"
    path.write_text(
        "[DEFAULT]\nuse_keystone_limits = true\n"
        "[oslo_limit]\n"
        f"auth_url = http://127.0.0.1:{free_port()}/v3\nauth_type = password\n"
        "username = glance\npassword = x\nuser_domain_id = default\nsystem_scope = all\n"
        "endpoint_id = 0123\n"
    )
    conf = load_config(["--config-file", str(path)])
    with pytest.raises(ServiceUnavailable, match="could not be read from Keystone"):
        unified_limits.enforce(session, conf, OWNER.project_id, {"image_count_total": 1})
    with pytest.raises(ServiceUnavailable):
        unified_limits.usage(session, conf, OWNER.project_id)


class RecordingEnforcer:
    """Keystone's limits as an oslo.limit Enforcer answers them, noting at each call
    whether the registry's SQLite transaction had already written (held the lock)."""

    def __init__(self, session, limits: dict):
        self.session, self.limits, self.while_writing = session, limits, []

    def _asked(self) -> None:
        sqlite = self.session.connection().connection.dbapi_connection
        self.while_writing.append(sqlite.in_transaction)

    def get_project_limits(self, project_id, resources):
        self._asked()
        return [(name, self.limits[name]) for name in resources]

    def enforce(self, project_id, deltas):
        self._asked()


@pytest.mark.parametrize("begin", ["upload", "stage"])
def test_keystone_is_never_asked_while_the_claim_holds_the_write_lock(
    session, make_image, monkeypatch, begin
):
    """A transaction holding SQLite's write lock while it waits on Keystone stalls the
    registry: every other writer then waits for the lock inside SQLite, where eventlet
    cannot switch to the holder. The uploading limit is read first, compared after."""
    from services.registry import imports, uploads

    conf = load_config([])
    conf.set_override("use_keystone_limits", True)
    first, second = make_image(), make_image()
    session.commit()
    keystone = RecordingEnforcer(session, {"image_count_uploading": 1})
    monkeypatch.setattr(unified_limits, "_enforcer", lambda _session, _conf: keystone)
    claim = uploads.begin_upload if begin == "upload" else imports.begin_stage
    extra = ("file",) if begin == "upload" else ()
    claim(session, OWNER, conf, first.id, "u1", *extra, 30)
    session.commit()
    with pytest.raises(QuotaExceeded, match="image_count_uploading"):
        claim(session, OWNER, conf, second.id, "u2", *extra, 30)
    session.rollback()
    assert keystone.while_writing and not any(keystone.while_writing)
