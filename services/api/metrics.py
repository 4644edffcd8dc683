"""Prometheus metrics of the gateway (beyond Glance, which has none), at ``/metrics``.

    tessera_http_requests_total{method,route,status}          requests answered
    tessera_http_request_duration_seconds{method,route}       latency histogram
    tessera_http_request_bytes_total{method,route}            bytes received (Content-Length)
    tessera_http_response_bytes_total{method,route}           bytes sent
    tessera_uploads_in_progress                               image uploads being received
    tessera_rpc_duration_seconds{service,method}              RPC latency histogram
    tessera_rpc_errors_total{service,method,error}            RPCs that failed (by type)
    tessera_service_up{service}                               registry / store answer their
                                                              health RPC (checked per scrape)

``route`` is the route template (``/v2/images/<image_id>/file``), never the path with its
ids, so the series stay few; a path no route matches is ``unmatched``.

Multiprocess-safe under gunicorn: the server (services/api/server.py) points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start, each worker
writes its values there, a dead worker's files are marked dead, and a scrape of any worker
sums them all. Like ``/healthcheck``, ``/metrics`` is served beside the API without a
token (scrapers have none); ``[metrics] enabled = False`` removes it and the recording,
``[metrics] allowed_source_ranges`` limits who may read it.

Per request the cost is a few counter and histogram updates (about 10-15 us of CPU in
multiprocess mode), recorded where the access line is written."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
#: environ key of the matched route template (services/api/app.py sets it)
ROUTE = "tessera.route"
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: (method, route) of the requests that receive image data
UPLOADS = {
    ("PUT", "/v2/images/<image_id>/file"),
    ("PUT", "/v2/images/<image_id>/stage"),
}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The gateway's metrics, made in a worker after the fork."""

    def __init__(self, conf, rpc_client=None):
        self.allowed = [
            ipaddress.ip_network(r, strict=False) for r in conf.metrics.allowed_source_ranges
        ]
        self.services_up = ServicesUp(rpc_client)
        self._children: dict = {}  # (method, route, status) -> bound series
        self._rpc_children: dict = {}
        if rpc_client is not None and hasattr(rpc_client, "observer"):
            rpc_client.observer = self.rpc_finished
        (
            self.requests,
            self.latency,
            self.bytes_in,
            self.bytes_out,
            self.uploads,
            self.rpc_latency,
            self.rpc_errors,
        ) = _instruments()

    # --- recording (hot path) ---

    def upload_started(self) -> None:
        self.uploads.inc()

    def upload_finished(self) -> None:
        self.uploads.dec()

    def request_finished(self, environ, status: str, sent: int, seconds: float) -> None:
        method = environ.get("REQUEST_METHOD", "-")
        if method not in METHODS:  # a client's made-up method is no new series
            method = "other"
        route = environ.get(ROUTE) or UNMATCHED
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # labels() costs a few us: the bound series are kept
            children = self._children[key] = (
                self.requests.labels(method, route, status),
                self.latency.labels(method, route),
                self.bytes_in.labels(method, route),
                self.bytes_out.labels(method, route),
            )
        count, latency, bytes_in, bytes_out = children
        count.inc()
        latency.observe(seconds)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit():
            bytes_in.inc(int(length))
        if sent:
            bytes_out.inc(sent)

    def rpc_finished(self, service: str, method: str, seconds: float, error=None) -> None:
        latency = self._rpc_children.get((service, method))
        if latency is None:
            latency = self._rpc_children[service, method] = self.rpc_latency.labels(service, method)
        latency.observe(seconds)
        if error is not None:
            self.rpc_errors.labels(service, method, type(error).__name__).inc()

    # --- /metrics ---

    def serve(self, environ, start_response):
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self._allowed(environ.get("REMOTE_ADDR")):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"403 Forbidden: not in [metrics] allowed_source_ranges\n"]
        if os.environ.get(MULTIPROC_ENV):  # every worker's values, summed
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:  # one process (a bare create_app): its own values
            from prometheus_client import REGISTRY as registry
        health = CollectorRegistry()
        health.register(self.services_up)
        body = generate_latest(registry) + generate_latest(health)
        start_response(
            "200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
        )
        return [body]

    def _allowed(self, address: str | None) -> bool:
        if not self.allowed:
            return True
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.allowed)


class ServicesUp:
    """``tessera_service_up{service}``: whether the registry and a store replica answer
    their health RPC, asked at each scrape (as /healthcheck asks)."""

    def __init__(self, rpc_client):
        from services.api.middleware import ServicesCheck

        self.check = ServicesCheck(None, None, rpc_client) if rpc_client is not None else None

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "tessera_service_up",
            "The service answers its health RPC (1) or not (0), asked at each scrape.",
            labels=["service"],
        )
        if self.check is not None:
            for service, (ok, _) in self.check.probe().items():
                family.add_metric([service], 1.0 if ok else 0.0)
        yield family


@functools.cache
def _instruments() -> tuple:
    """The metrics, made once per process (prometheus_client refuses a second metric of
    the same name: several apps in one process share them)."""
    from prometheus_client import Counter, Gauge, Histogram

    return (
        Counter("tessera_http_requests", "Requests answered.", ["method", "route", "status"]),
        Histogram(
            "tessera_http_request_duration_seconds",
            "Time to answer a request (to the end of its body).",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
        ),
        Counter(
            "tessera_http_request_bytes",
            "Request body bytes (Content-Length).",
            ["method", "route"],
        ),
        Counter("tessera_http_response_bytes", "Response body bytes sent.", ["method", "route"]),
        Gauge(
            "tessera_uploads_in_progress",
            "Image uploads being received.",
            multiprocess_mode="livesum",
        ),
        Histogram(
            "tessera_rpc_duration_seconds",
            "Time a service took to answer an RPC.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
        ),
        Counter(
            "tessera_rpc_errors", "RPCs that failed, by error type.", ["service", "method", "error"]
        ),
    )


# --- the server's side: the directory every worker writes to ---


def prepare_multiprocess_dir() -> str:
    """Before the workers fork: a fresh directory for their values (an operator's own
    PROMETHEUS_MULTIPROC_DIR is used and emptied). Returns it."""
    import shutil
    import tempfile

    path = os.environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        path = tempfile.mkdtemp(prefix="tessera-metrics-")
        os.environ[MULTIPROC_ENV] = path
        import atexit

        atexit.register(shutil.rmtree, path, True)
    return path


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
