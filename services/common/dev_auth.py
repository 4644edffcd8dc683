"""Development auth stays on loopback: with no ``[paste_deploy] flavor`` every caller
without identity headers is an admin, so the API refuses to start on a ``bind_host``
other people can reach unless ``[DEFAULT] allow_insecure_dev_auth`` says so.

Checked at start by ``tessera-api`` and ``tessera-run`` (one line, exit status 1)."""

from __future__ import annotations

import ipaddress
import socket
import sys

from oslo_config import cfg

from services.common.config import paste_flavor


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0].split("%", 1)[0]).is_loopback for info in infos
    )


def dev_auth_exposed(conf: cfg.ConfigOpts) -> str | None:
    """Why this configuration may not start (None: it may)."""
    auth, _cache = paste_flavor(conf)
    if auth == "keystone" or conf.allow_insecure_dev_auth or is_loopback(conf.bind_host):
        return None
    return (
        f"development auth (no [paste_deploy] flavor: any caller is an admin) refuses "
        f"bind_host = {conf.bind_host}, which is not a loopback address: set "
        f"[paste_deploy] flavor = keystone, bind to 127.0.0.1, or set [DEFAULT] "
        f"allow_insecure_dev_auth = True"
    )


def check_dev_auth_bind(conf: cfg.ConfigOpts, prog: str) -> None:
    """Exit with a one-line message (no traceback) if dev auth would be exposed."""
    reason = dev_auth_exposed(conf)
    if reason:
        sys.exit(f"{prog}: {reason}")
