"""Logging with oslo.log, as Glance logs: its options (``debug``, ``log_file``,
``log_dir``, ``use_syslog``, ``use_json``, ``log_config_append``, the format strings,
``default_log_levels`` ...) are registered by ``services.common.config.build_config`` and
set up by ``setup_logging`` in every service.

Each line of a request carries its ids in oslo's context bracket, global first:
``[<global request id or None> req-<local> <user> <project> - - - -]``. The ids are kept
in oslo.context's per-thread store (per greenlet in the nameko services), which is what
oslo.log's formatters read, so the JSON lines (``use_json``) carry them too.

Log files: ``log_file`` (relative to ``log_dir`` when both are set) is shared by every
service of the machine; ``log_dir`` alone gives each service its own file,
``<log_dir>/tessera-<service>.log``."""

from __future__ import annotations

import contextvars
import logging
import os

from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_log import log as oslo_log

#: oslo.log's own formats with the service name before the logger's:
#: ``2026-11-30 07:40:01.123 4242 INFO registry:services.registry.service [...] ...``
CONTEXT_FORMAT = (
    "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s "
    "[%(global_request_id)s %(request_id)s %(user_identity)s] %(instance)s%(message)s"
)
DEFAULT_FORMAT = (
    "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s [-] %(instance)s%(message)s"
)
EXCEPTION_PREFIX = "%(asctime)s.%(msecs)03d %(process)d ERROR %(name)s %(instance)s"
#: oslo.log's DEFAULT_LOG_LEVELS and the chatty libraries under Tessera.
DEFAULT_LOG_LEVELS = [
    *oslo_log.get_default_log_levels(),
    "kombu=WARN",
    "nameko=WARN",
    "urllib3=WARN",
    "gunicorn.error=INFO",
]


class _ContextVarStore:
    """oslo.context's per-thread store of the current context, made per greenlet too:
    a ``threading.local`` made before eventlet patches a service would be shared by every
    greenthread, and one request's lines would carry another's ids. A ContextVar is per
    thread and per greenthread alike (the gateway runs threads, services/api/front.py).

    Adapter: oslo.context keeps the store in the module global ``_request_store`` and
    reads its ``context`` attribute (``get_current``, ``update_store``). Tripwire:
    tests/unit/common/test_logs.py."""

    _current: contextvars.ContextVar = contextvars.ContextVar("oslo_context", default=None)

    @property
    def context(self):
        return self._current.get()

    @context.setter
    def context(self, value) -> None:
        self._current.set(value)


oslo_context._request_store = _ContextVarStore()


class LogContext(oslo_context.RequestContext):
    """oslo.context's RequestContext for log lines only: its logging values are made once
    (oslo.log asks for them twice per line, and they never change for a request)."""

    _logging_values: dict | None = None

    def get_logging_values(self) -> dict:
        if self._logging_values is None:
            self._logging_values = super().get_logging_values()
        return self._logging_values


def register_options(conf: cfg.ConfigOpts) -> None:
    """oslo.log's options, with Tessera's defaults (before the config is parsed)."""
    oslo_log.register_options(conf)
    oslo_log.set_defaults(
        logging_context_format_string=CONTEXT_FORMAT, default_log_levels=DEFAULT_LOG_LEVELS
    )


def setup_logging(conf: cfg.ConfigOpts, service: str) -> None:
    """oslo.log's set-up for one service (``api``, ``registry``, ``store``, ``cache``)."""
    for name, fmt in (
        ("logging_context_format_string", CONTEXT_FORMAT),
        ("logging_default_format_string", DEFAULT_FORMAT),
        ("logging_exception_prefix", EXCEPTION_PREFIX),
    ):
        if conf[name] == fmt:  # not the operator's own: name the service in each line
            conf.set_default(name, fmt.replace("%(name)s", f"{service}:%(name)s"))
    if conf.log_dir and not conf.log_file:
        conf.set_override("log_file", f"tessera-{service}.log")
    if conf.log_file and not conf.log_config_append:  # its directory, as data_dir's
        path = os.path.join(conf.log_dir or "", conf.log_file)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    oslo_log.setup(conf, f"tessera-{service}", fix_eventlet=service != "api")
    logging.getLogger("nameko.containers").addFilter(ExpectedErrorFilter())


def set_request_id(
    request_id: str | None,
    global_request_id: str | None = None,
    user_id: str | None = None,
    project_id: str | None = None,
) -> LogContext | None:
    """Make the log lines of this thread (greenlet) carry these ids, until the next call;
    ``None`` clears them. Returns the logging context (about 1.5 us to make)."""
    if request_id is None:
        oslo_context._request_store.context = None
        return None
    return LogContext(
        request_id=request_id,
        global_request_id=global_request_id,
        user_id=user_id,
        project_id=project_id,
        overwrite=True,
    )


def log_context(request_id: str, global_request_id: str | None = None) -> LogContext:
    """A logging context for one line (``extra={"context": ...}``), the store untouched."""
    return LogContext(request_id=request_id, global_request_id=global_request_id, overwrite=False)


def current_log_context() -> oslo_context.RequestContext | None:
    """This thread's (greenlet's) logging context, for lines written later elsewhere
    (``extra={"context": ...}``), e.g. once a response body has been sent."""
    return oslo_context.get_current()


class ExpectedErrorFilter(logging.Filter):
    """nameko logs a warning with a traceback for every expected error (a 404 is a
    client's error, not a crash): one INFO line instead, without nameko's internals:
    ``registry.get_image: NotFound: No image found with ID ...``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith("(expected)"):
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
            if isinstance(record.args, tuple) and len(record.args) == 2:
                worker_ctx, exc = record.args
                entrypoint = getattr(worker_ctx, "entrypoint", None)
                where = (
                    f"{worker_ctx.service_name}.{entrypoint.method_name}"
                    if entrypoint is not None
                    else str(worker_ctx)
                )
                record.msg, record.args = "%s: %s: %s", (where, type(exc).__name__, exc)
        return True


def transfer_summary(nbytes: int, seconds: float) -> str:
    """``12345678 bytes in 0.52 s (23.7 MB/s)`` for the upload and download lines
    (MB = 10^6 bytes, as the benchmark counts)."""
    rate = nbytes / seconds / 1e6 if seconds > 0 else 0.0
    return f"{nbytes} bytes in {seconds:.2f} s ({rate:.1f} MB/s)"
