"""The gateway pipeline in one process, with a stand-in for the RPC client: the tripwire
of the healthcheck adapter (services/api/middleware.py reaches into oslo.middleware's
Healthcheck) and ``public_endpoint`` in the version document."""

from __future__ import annotations

import pytest

from services.api.app import create_app
from services.common.config import load_config
from services.common.errors import ServiceUnavailable


class HealthRpc:
    """Answers ``health`` for the services in ``up``."""

    def __init__(self, up=("registry", "store")):
        self.up = set(up)

    def call(self, service, method, ctx, *args, **kwargs):
        assert method == "health"
        if service not in self.up:
            raise ServiceUnavailable(f"The {service} service is not running.")
        return {"status": "ok"}


def client(tmp_path, rpc, **default):
    path = tmp_path / "tessera.conf"
    path.write_text("[DEFAULT]\n" + "".join(f"{k} = {v}\n" for k, v in default.items()))
    conf = load_config(["--config-file", str(path)])
    return create_app(conf, rpc).test_client()


@pytest.mark.parametrize(
    ("up", "status", "body"),
    [
        (("registry", "store"), 200, "OK"),
        (("store",), 503, "registry not answering"),
        ((), 503, "registry and store not answering"),
    ],
)
def test_healthcheck_plugin_decides_the_answer(tmp_path, up, status, body):
    """Fails loudly if oslo.middleware's Healthcheck stops calling the plugin that
    ServicesHealthcheck adds to its ``_backends``."""
    resp = client(tmp_path, HealthRpc(up)).get("/healthcheck")
    assert resp.status_code == status
    assert resp.get_data(as_text=True) == body
    assert resp.headers["x-openstack-request-id"].startswith("req-")


def test_public_endpoint_in_the_version_document(tmp_path):
    api = client(tmp_path, HealthRpc(), public_endpoint="https://images.example.com/glance")
    for path in ("/", "/versions"):
        links = [v["links"][0]["href"] for v in api.get(path).get_json()["versions"]]
        assert set(links) == {  # v1's too while enable_v1_api is on (the default)
            "https://images.example.com/glance/v2/",
            "https://images.example.com/glance/v1/",
        }


def test_version_document_follows_the_request_without_public_endpoint(tmp_path):
    api = client(tmp_path, HealthRpc())
    body = api.get("/versions", base_url="http://api.example.org:9292").get_json()
    assert body["versions"][0]["links"][0]["href"] == "http://api.example.org:9292/v2/"


def test_a_500_carries_the_request_id_and_is_logged(tmp_path, caplog):
    api = client(tmp_path, HealthRpc())
    api.application.add_url_rule("/boom", "boom", lambda: 1 // 0)
    caller_id = "req-12345678-1234-4234-9234-123456789012"
    with caplog.at_level("INFO", logger="tessera.access"):
        resp = api.get("/boom?x=1", headers={"X-OpenStack-Request-ID": caller_id})
        assert resp.status_code == 500
        assert resp.headers["x-openstack-request-id"] == caller_id
        resp.close()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "tessera.access"]
    assert '"GET /boom?x=1" status 500 len ' in line
    assert line.endswith(f"global_request_id {caller_id}")


def metrics_client(tmp_path, rpc, **metrics):
    path = tmp_path / "tessera.conf"
    path.write_text("[metrics]\n" + "".join(f"{k} = {v}\n" for k, v in metrics.items()))
    return create_app(load_config(["--config-file", str(path)]), rpc).test_client()


def test_metrics_endpoint_without_a_token(tmp_path):
    api = metrics_client(tmp_path, HealthRpc(up=("registry",)))
    api.get("/versions").close()  # recorded when the body is closed, as the access line
    resp = api.get("/metrics")
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert 'tessera_http_requests_total{method="GET",route="/versions",status="200"}' in text
    assert 'tessera_service_up{service="registry"} 1.0' in text
    assert 'tessera_service_up{service="store"} 0.0' in text


def test_metrics_can_be_limited_by_source_and_turned_off(tmp_path):
    limited = metrics_client(tmp_path, HealthRpc(), allowed_source_ranges="10.0.0.0/8")
    assert limited.get("/metrics").status_code == 403
    assert limited.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200
    off = metrics_client(tmp_path, HealthRpc(), enabled="False")
    assert off.get("/metrics").status_code == 404
