"""``tessera-ping registry|store|cache|api [--config-file PATH]``: a health check for
container orchestrators (docker-compose.yml's ``healthcheck``) and operators.

- ``registry``, ``store``, ``cache``: the service's ``health`` RPC over RabbitMQ, with the
  configuration the service itself runs with (broker hosts, TLS). It is answered by any
  running replica of that service, so it says that this host reaches the broker and that
  the service answers, which is what the services that depend on it need;
- ``api``: ``GET /healthcheck`` on this host's gateway (``bind_port``), which answers 200
  when the registry and a store replica answer (services/api/middleware.py).

Prints one line and exits 0 when healthy, 1 otherwise, within ``TIMEOUT`` seconds."""

from __future__ import annotations

import logging
import sys
import time
import urllib.error
import urllib.request

TIMEOUT = 5.0
SERVICES = ("registry", "store", "cache", "api")


def ping_service(conf, name: str, timeout: float = TIMEOUT) -> str:
    """The service's answer to ``health``; raises when none comes."""
    from services.api.rpc_client import RpcClient
    from services.common.context import RequestContext

    client = RpcClient.from_config(conf)
    client.timeout = timeout
    try:
        answer = client.call(name, "health", RequestContext())
    finally:
        client.close()
    if answer.get("status") != "ok":
        raise RuntimeError(f"answered {answer}")
    return "ok"


def ping_api(conf, timeout: float = TIMEOUT) -> str:
    host = conf.bind_host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: ask on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{conf.bind_port}/healthcheck"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read(200).decode(errors="replace").strip() or str(resp.status)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{url} answered {exc.code}") from None


def main(argv: list[str] | None = None) -> None:
    from services.common.config import load_config

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SERVICES:
        sys.exit(f"usage: tessera-ping {{{'|'.join(SERVICES)}}} [--config-file PATH]")
    name = argv[0]
    logging.getLogger().addHandler(logging.NullHandler())  # the one line below says it
    conf = load_config(argv[1:], prog="tessera-ping")
    started = time.monotonic()
    try:
        answer = ping_api(conf) if name == "api" else ping_service(conf, name)
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", said in one line
        print(f"{name}: unhealthy: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: {answer} ({(time.monotonic() - started) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
