"""Logging set-up shared by every service: each line carries the request id of the call
it belongs to, so one request can be followed through the gateway and every service.
When the caller sent its own ``X-OpenStack-Request-ID`` (the global request id), the
line carries both, global first as in oslo.log: ``[req-<global> req-<local>]``."""

from __future__ import annotations

import logging
import threading

_local = threading.local()  # greenlet-local in nameko services (eventlet patches threading)

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s [%(request_id)s] %(message)s"


def set_request_id(request_id: str | None, global_request_id: str | None = None) -> None:
    _local.request_id = request_id
    _local.global_request_id = global_request_id


def current_request_id() -> str | None:
    return getattr(_local, "request_id", None)


def current_global_request_id() -> str | None:
    return getattr(_local, "global_request_id", None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        local, caller = current_request_id(), current_global_request_id()
        record.request_id = f"{caller} {local or '-'}" if caller else local or "-"
        return True


class ExpectedErrorFilter(logging.Filter):
    """nameko logs a traceback for every expected error (a 404 is not a crash): keep the
    one-line message only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith("(expected)"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def setup_logging(conf, service: str) -> None:
    handler = logging.FileHandler(conf.log_file) if conf.log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT.replace("%(name)s", f"{service}:%(name)s")))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if conf.debug else logging.INFO)
    for noisy in ("amqp", "kombu", "nameko", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("nameko.containers").addFilter(ExpectedErrorFilter())
