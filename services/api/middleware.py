"""The gateway's WSGI pipeline around the Flask app, built from oslo.middleware as Glance
builds its paste pipeline (glance-api-paste.ini), outermost first:

    access log + request id  one INFO line per request; x-openstack-request-id on every
                             response, including 401s, 404s of unknown routes and 500s
    cors                     [cors] allowed_origin, ... (oslo_middleware.cors), when set
    http_proxy_to_wsgi       X-Forwarded-Proto/Host/For, when [oslo_middleware]
                             enable_proxy_headers_parsing = True
    /healthcheck             oslo_middleware.healthcheck, mounted beside the API as in
                             Glance's composite: it needs no token in Keystone mode
    authtoken                keystonemiddleware, only with [paste_deploy] flavor = keystone
    the Flask app            (services/api/app.py)

Request ids follow oslo_middleware.request_id: every request gets a new local id
(``openstack.request_id`` in the WSGI environ); a caller's ``X-OpenStack-Request-ID`` in
the ``req-<uuid>`` form becomes the global request id (``openstack.global_request_id``),
which crosses RPC in the RequestContext and is logged beside the local id. The response
answers the caller's own id when it sent a valid one, as Glance 33 does (its context
middleware makes the caller's id the context's request id and echoes it), and the local
id otherwise."""

from __future__ import annotations

import contextvars
import logging
import re
import time

from oslo_context.context import generate_request_id
from oslo_middleware import cors, http_proxy_to_wsgi
from oslo_middleware import healthcheck as oslo_healthcheck
from oslo_middleware.healthcheck.pluginbase import HealthcheckBaseExtension, HealthcheckResult
from oslo_middleware.request_id import (
    ENV_REQUEST_ID,
    GLOBAL_REQ_ID,
    HTTP_RESP_HEADER_REQUEST_ID,
    ID_FORMAT,
)
from stevedore.extension import Extension

from services.api.metrics import METRICS_PATH, ROUTE
from services.common.context import RequestContext
from services.common.errors import TesseraError
from services.common.logs import log_context

access_log = logging.getLogger("tessera.access")
#: The environ key of the request's logging context (services/api/app.py sets it).
LOG_CONTEXT = "tessera.log_context"
UPLOADING = "tessera.uploading"
log = logging.getLogger(__name__)

HEALTHCHECK_PATH = "/healthcheck"
#: Seconds a health probe waits for each service: a load balancer wants an answer fast.
HEALTH_RPC_TIMEOUT = 2.0

_valid_global_id = re.compile(ID_FORMAT).match
_show_details: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tessera_healthcheck_details", default=False
)


def build_pipeline(api_app, conf, rpc_client, flavor: str):
    """The WSGI app gunicorn serves: ``api_app`` (the Flask app's wsgi_app) wrapped as
    the module docstring describes."""
    if flavor == "keystone":
        from services.api.keystone import wrap_with_auth_token

        api_app = wrap_with_auth_token(api_app, conf)
    health = ServicesHealthcheck(None, conf, rpc_client, flavor)
    metrics = None
    if conf.metrics.enabled:
        from services.api.metrics import Metrics

        metrics = Metrics(conf, rpc_client)

    def route(environ, start_response):
        path = (environ.get("PATH_INFO") or "").rstrip("/")
        if path == HEALTHCHECK_PATH:
            environ[ROUTE] = HEALTHCHECK_PATH
            return health(environ, start_response)
        if path == METRICS_PATH and metrics is not None:
            environ[ROUTE] = METRICS_PATH
            return metrics.serve(environ, start_response)
        return api_app(environ, start_response)

    # Each webob layer costs ~50 us of CPU per request even when it has nothing to do:
    # left out when not configured (they would pass every request through unchanged).
    app = route
    if conf.oslo_middleware.enable_proxy_headers_parsing:
        app = http_proxy_to_wsgi.HTTPProxyToWSGI(app, conf)
    if conf.cors.allowed_origin:
        app = cors.CORS(app, conf)
    return AccessLogAndRequestId(app, metrics)


# --- request ids and the access log ---


class AccessLogAndRequestId:
    """oslo_middleware.request_id's semantics, and one access-log line per request, in
    one plain WSGI layer (no webob: a download's first block and its socket splice pass
    through untouched)."""

    def __init__(self, app, metrics=None):
        self.app = app
        self.metrics = metrics  # services/api/metrics.py, or None when turned off

    def __call__(self, environ, start_response):
        started = time.monotonic()
        metrics = self.metrics
        if metrics is not None and _receives_image_data(environ):
            metrics.upload_started()
            environ[UPLOADING] = True
        local_id = generate_request_id()
        environ[ENV_REQUEST_ID] = local_id
        caller_id = environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")
        if _valid_global_id(caller_id):
            environ[GLOBAL_REQ_ID] = caller_id
        answered_id = environ.get(GLOBAL_REQ_ID) or local_id
        seen: dict = {}

        def tagging_start_response(status, headers, exc_info=None):
            if not any(k.lower() == HTTP_RESP_HEADER_REQUEST_ID for k, _ in headers):
                headers = [*headers, (HTTP_RESP_HEADER_REQUEST_ID, answered_id)]
            seen["status"] = status
            seen["length"] = next(
                (v for k, v in headers if k.lower() == "content-length" and v.isdigit()), None
            )
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, tagging_start_response)
        except Exception:
            self._log(environ, "500", 0, started, local_id)
            raise
        return _LoggedBody(
            body, lambda sent, done: self._finish(environ, seen, sent, done, started)
        )

    def _finish(self, environ, seen, sent, done, started):
        # A download past its first block is spliced to the socket, not iterated here:
        # when the body ran to its end, Content-Length is what the client received.
        length = seen.get("length")
        size = (
            int(length)
            if done and length is not None and environ["REQUEST_METHOD"] != "HEAD"
            else sent
        )
        self._log(
            environ,
            (seen.get("status") or "-").split(" ", 1)[0],
            size,
            started,
            environ.get(ENV_REQUEST_ID),
        )

    def _log(self, environ, status, size, started, local_id):
        seconds = time.monotonic() - started
        query = environ.get("QUERY_STRING")
        path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        caller = environ.get(GLOBAL_REQ_ID)
        # the request's ids (and user) in the context bracket, as its other lines
        context = environ.get(LOG_CONTEXT) or log_context(local_id, caller)
        access_log.info(
            '%s "%s %s" status %s len %d time %.1f ms request_id %s%s',
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD", "-"),
            path,
            status,
            size,
            seconds * 1000,
            local_id,
            f" global_request_id {caller}" if caller else "",
            extra={"context": context},
        )
        if self.metrics is not None:
            self.metrics.request_finished(environ, status, size, seconds)
            if environ.get(UPLOADING):
                self.metrics.upload_finished()


def _receives_image_data(environ) -> bool:
    """An image upload (PUT .../file or .../stage), for the uploads-in-progress gauge."""
    if environ.get("REQUEST_METHOD") != "PUT":
        return False
    path = environ.get("PATH_INFO") or ""
    return path.startswith("/v2/images/") and path.endswith(("/file", "/stage"))


class _LoggedBody:
    """The response body, counted as it is sent; the access line is written on close()
    (the WSGI server calls it when the response is finished or abandoned)."""

    def __init__(self, body, finish):
        self._body = body
        self._finish = finish
        self._sent = 0
        self._done = False

    def __iter__(self):
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk
        self._done = True

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            finish, self._finish = self._finish, None
            if finish is not None:
                finish(self._sent, self._done)


# --- /healthcheck ---


def _identified(environ, start_response):
    """The end of the healthcheck's own auth_token: keep the headers it set."""
    from webob import Request

    environ["tessera.identified"]["headers"] = Request(environ).headers
    start_response("204 No Content", [])
    return [b""]


class ServicesCheck(HealthcheckBaseExtension):
    """An oslo.middleware healthcheck plugin: the registry and a store replica answer
    their ``health`` RPC."""

    SERVICES = ("registry", "store")

    def __init__(self, oslo_conf, conf, rpc_client=None):
        super().__init__(oslo_conf, conf)
        self.rpc = _health_client(rpc_client)

    def probe(self) -> dict[str, tuple[bool, str]]:
        """{service: (answers, what happened)} for the registry and a store replica
        (also the ``tessera_service_up`` metric, services/api/metrics.py)."""
        outcomes = {}
        for service in self.SERVICES:
            started = time.monotonic()
            try:
                answer = self.rpc.call(service, "health", RequestContext())
                ok = isinstance(answer, dict) and answer.get("status") == "ok"
                outcome = "ok" if ok else f"answered {answer!r}"
            except TesseraError as exc:
                ok, outcome = False, exc.message
            except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
                ok, outcome = False, f"{type(exc).__name__}: {exc}"
            took = (time.monotonic() - started) * 1000
            outcomes[service] = (ok, f"{outcome} ({took:.0f} ms)")
        return outcomes

    def healthcheck(self, server_port: int) -> HealthcheckResult:
        outcomes = self.probe()
        details = "; ".join(f"{service}: {outcome}" for service, (_, outcome) in outcomes.items())
        failures = [service for service, (ok, _) in outcomes.items() if not ok]
        if failures:
            log.warning("healthcheck: %s", details)
            return HealthcheckResult(
                available=False,
                reason=f"{' and '.join(failures)} not answering",
                details=details,
            )
        return HealthcheckResult(available=True, reason="OK", details=details)


def _health_client(rpc_client):
    """The gateway's RpcClient with a short timeout of its own (a stalled registry makes
    the probe a quick 503, not a wait of rpc_timeout)."""
    from services.api.rpc_client import RpcClient

    if not isinstance(rpc_client, RpcClient):
        return rpc_client
    return RpcClient(
        rpc_client.amqp_uri,
        timeout=min(HEALTH_RPC_TIMEOUT, rpc_client.timeout),
        ssl=rpc_client.ssl,
        heartbeat=rpc_client.heartbeat,
        connect_timeout=min(HEALTH_RPC_TIMEOUT, rpc_client.connect_timeout),
    )


class ServicesHealthcheck(oslo_healthcheck.Healthcheck):
    """oslo.middleware's Healthcheck with Tessera's ServicesCheck after the operator's
    ``[healthcheck] backends`` (e.g. disable_by_file), and ``[healthcheck] detailed``
    output only for admins (anyone else gets the plain answer).

    Adapter with a tripwire (tests/unit/api/test_middleware.py): the plugin is added to
    the Healthcheck's ``_backends`` (it iterates stevedore Extensions and calls
    ``ext.obj.healthcheck(port)``), so that it needs no entry point of an installed
    package; and ``_show_details`` becomes per request."""

    def __init__(self, application, conf, rpc_client, flavor: str):
        super().__init__(application, conf)
        check = ServicesCheck(self.oslo_conf, self.conf, rpc_client)
        self._backends = [*self._backends, Extension("tessera", None, ServicesCheck, check)]
        self._flavor = flavor
        self._identify = None
        if flavor == "keystone" and self._detailed_allowed:
            # Only to know whether a token holder is an admin: a request without a valid
            # token passes through unauthenticated and gets the plain answer.
            from keystonemiddleware import auth_token

            self._identify = auth_token.AuthProtocol(
                _identified, {"oslo_config_config": self.oslo_conf, "delay_auth_decision": True}
            )

    @property
    def _show_details(self) -> bool:
        return _show_details.get()

    @_show_details.setter
    def _show_details(self, value: bool) -> None:  # set once by Healthcheck.__init__
        self._detailed_allowed = bool(value)

    def _is_admin(self, req) -> bool:
        from services.api.auth import ADMIN_ROLE, context_from_headers

        headers = req.headers
        if self._identify is not None:
            seen: dict = {}
            environ = {**req.environ, "tessera.identified": seen}
            self._identify(environ, lambda *args: None)
            headers = seen.get("headers", {})
        try:
            return ADMIN_ROLE in context_from_headers(headers, self._flavor).roles
        except TesseraError:
            return False

    def process_request(self, req):
        details = _show_details.set(self._detailed_allowed and self._is_admin(req))
        try:
            return super().process_request(req)
        finally:
            _show_details.reset(details)
