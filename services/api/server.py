"""``tessera-api [--config-file PATH]``: the gateway under gunicorn: threaded workers
whose main loop gathers each request before a thread serves it, with header, idle and
upload timeouts (services/api/front.py says why; no eventlet in this process). Each
worker builds its own app, and so its own RPC connections, after the fork."""

from __future__ import annotations

import sys

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from services.common.config import load_config
from services.common.config_check import log_config_warnings
from services.common.dev_auth import check_dev_auth_bind
from services.common.logs import setup_logging
from services.common.property_protections import check_at_start


class OsloLogger(glogging.Logger):
    """gunicorn's own lines (workers booting, exiting, timing out) through oslo.log's
    handlers, so that they land in the gateway's log file too, in its format."""

    def setup(self, cfg):
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


class GatewayServer(BaseApplication):
    def __init__(self, conf):
        self.conf = conf
        super().__init__()

    def load_config(self):
        conf = self.conf
        settings = {
            "bind": f"{conf.bind_host}:{conf.bind_port}",
            "workers": conf.workers,
            "threads": conf.threads,
            "worker_class": "services.api.front.GatewayWorker",
            "worker_connections": conf.worker_connections,
            # A list URL with ~100 ids in an in: filter is ~4 KB, gunicorn's default
            # limit; 8190 is its largest. Headers as long as Glance's max_header_line.
            "limit_request_line": 8190,
            "limit_request_field_size": 16384,
            # how long a kept-alive connection may idle (Glance's client_socket_timeout;
            # 0 would turn keep-alive off here, so "no limit" is a day)
            "keepalive": conf.client_socket_timeout or 86400,
            "timeout": 120,
            "graceful_timeout": 10,
            "control_socket_disable": True,
            "accesslog": None,  # the pipeline's own (services/api/middleware.py)
            "logger_class": OsloLogger,
            # X-Forwarded-* are oslo's http_proxy_to_wsgi's, only with [oslo_middleware]
            # enable_proxy_headers_parsing, as Glance (gunicorn trusts a local proxy's)
            "secure_scheme_headers": {},
            "proc_name": "tessera-api",
            # v1 clients send x-image-meta-disk_format (an underscore), which gunicorn
            # drops by default; "dangerous" maps it to HTTP_X_IMAGE_META_DISK_FORMAT as
            # eventlet did for Glance. Identity headers are safe either way: Keystone's
            # auth_token strips every spelling that maps to the same environ key.
            "header_map": "dangerous" if conf.enable_v1_api else "drop",
        }
        if conf.metrics.enabled:  # a dead worker's live gauges stop counting
            from services.api.metrics import worker_exited

            settings["child_exit"] = lambda _arbiter, worker: worker_exited(worker.pid)
        for key, value in settings.items():
            self.cfg.set(key, value)
        from services.api.front import configure

        configure(conf.client_header_timeout, conf.client_socket_timeout)

    def load(self):
        from services.api.app import create_app

        setup_logging(self.conf, "api")
        return create_app(self.conf)


def main(argv: list[str] | None = None) -> None:
    conf = load_config(sys.argv[1:] if argv is None else argv, prog="tessera-api")
    check_at_start(conf, "tessera-api")
    check_dev_auth_bind(conf, "tessera-api")
    setup_logging(conf, "api")
    log_config_warnings(conf)
    if conf.metrics.enabled:
        # before any worker imports prometheus_client: each writes its values there
        from services.api.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir()
    GatewayServer(conf).run()


if __name__ == "__main__":
    main()
