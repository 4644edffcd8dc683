"""The one filter for every URL Tessera fetches on a user's behalf (web-download imports
and the http store's locations).

Glance's ``[import_filtering_opts]`` with Glance 33's meaning:
- ``allowed_schemes`` (default http, https) wins over ``disallowed_schemes``; likewise
  ``allowed_hosts`` over ``disallowed_hosts`` and ``allowed_ports`` (default 80, 443)
  over ``disallowed_ports``: when both lists of a pair are set, only the allowed one
  counts;
- a host given in an encoded form (``2130706433``, ``0x7f000001``, ``127.1``) is refused;
- loopback and link-local addresses are refused unless the host is in ``allowed_hosts``.

Safer than Glance:
- private, shared, reserved, multicast and unspecified addresses (10/8, 172.16/12,
  192.168/16, fc00::/7, 100.64/10 ...) are refused too, unless the host (or that very
  address) is in ``allowed_hosts``;
- the port checked is the one connected to, also when the URL names none (Glance only
  checks a port written in the URL);
- only http and https are ever fetched, whatever ``allowed_schemes`` says;
- ``resolve`` checks every address the name resolves to and pins the connection to an
  allowed one (no second lookup an attacker's DNS could answer differently); the
  fetchers call it again for every redirect hop (services/store/web_fetch.py,
  services/store/backends/http.py, through services/store/pinned_http.py).

``check`` is what needs no DNS (the gateway's 400 at ``/import``); ``resolve`` is the
whole check, made by the store replica right before it connects.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from services.common.errors import BadRequest

FETCHABLE_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class UrlRefused(BadRequest):
    """The URL does not pass ``[import_filtering_opts]``."""


@dataclass(frozen=True)
class Target:
    """A URL that passed the filter: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # as the Host header and TLS name want it
    port: int
    path: str  # path and query, the request target
    address: str | None = None  # the pinned address, once resolved


def _address(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_class(addr) -> str | None:
    """Why an address is not a public one (None for a public address)."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_multicast:
        return "multicast"
    if not addr.is_global:
        return "private"
    return None


class UrlFilter:
    def __init__(
        self,
        allowed_schemes=("http", "https"),
        disallowed_schemes=(),
        allowed_hosts=(),
        disallowed_hosts=(),
        allowed_ports=(80, 443),
        disallowed_ports=(),
    ):
        lower = lambda items: {str(i).strip().lower() for i in items if str(i).strip()}  # noqa: E731
        self.allowed_schemes = lower(allowed_schemes)
        self.disallowed_schemes = set() if self.allowed_schemes else lower(disallowed_schemes)
        self.allowed_hosts = {_normal(h) for h in lower(allowed_hosts)}
        self.disallowed_hosts = (
            set() if self.allowed_hosts else {_normal(h) for h in lower(disallowed_hosts)}
        )
        self.allowed_ports = {int(p) for p in allowed_ports}
        self.disallowed_ports = set() if self.allowed_ports else {int(p) for p in disallowed_ports}

    @classmethod
    def from_config(cls, conf) -> UrlFilter:
        opts = conf.import_filtering_opts
        return cls(
            opts.allowed_schemes,
            opts.disallowed_schemes,
            opts.allowed_hosts,
            opts.disallowed_hosts,
            opts.allowed_ports,
            opts.disallowed_ports,
        )

    def check(self, url) -> Target:
        """Everything but DNS: scheme, host, port, and the address when the host is one.
        Raises UrlRefused."""
        if not isinstance(url, str) or not url:
            raise UrlRefused(f"URI for web-download does not pass filtering: {url}")
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise _refused(url, str(exc)) from None
        scheme = parts.scheme.lower()
        if (
            not scheme
            or (self.allowed_schemes and scheme not in self.allowed_schemes)
            or scheme in self.disallowed_schemes
        ):
            raise _refused(url, f"scheme {scheme or '(none)'} is not allowed")
        if scheme not in FETCHABLE_SCHEMES:
            raise _refused(url, f"Tessera fetches only {' and '.join(FETCHABLE_SCHEMES)}")
        if parts.username is not None or parts.password is not None:
            raise _refused(url, "credentials in the URL are not allowed")
        host = _normal(host or "")
        if not host or _encoded_address(host):
            raise _refused(url, "the host is missing or written in an encoded form")
        if (self.allowed_hosts and host not in self.allowed_hosts) or host in self.disallowed_hosts:
            raise _refused(url, f"host {host} is not allowed")
        port = port or DEFAULT_PORTS[scheme]
        if (self.allowed_ports and port not in self.allowed_ports) or port in self.disallowed_ports:
            raise _refused(url, f"port {port} is not allowed")
        literal = _address(host)
        if literal is not None:
            self._check_address(url, host, literal)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return Target(url, scheme, host, port, path)

    def resolve(self, url) -> Target:
        """The whole check: ``check``, then every address the host resolves to; the
        target is pinned to the first allowed one. Raises UrlRefused."""
        target = self.check(url)
        literal = _address(target.host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = socket.getaddrinfo(
                    target.host.rstrip(".") + ".", target.port, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError) as exc:
                raise _refused(url, f"host {target.host} does not resolve: {exc}") from None
            addresses = []
            for info in infos:
                addr = _address(str(info[4][0]).split("%", 1)[0])
                if addr is not None and addr not in addresses:
                    addresses.append(addr)
        allowed, reasons = [], []
        for addr in addresses:
            try:
                self._check_address(url, target.host, addr)
                allowed.append(addr)
            except UrlRefused as exc:
                reasons.append(str(exc))
        if not allowed:
            raise UrlRefused(reasons[0]) if reasons else _refused(url, "no address")
        return replace(target, address=str(allowed[0]))

    def _check_address(self, url: str, host: str, addr) -> None:
        text = str(addr)
        if text in self.disallowed_hosts:
            raise _refused(url, f"address {text} is not allowed")
        if host in self.allowed_hosts or text in self.allowed_hosts:
            return
        why = address_class(addr)
        if why is not None:
            raise _refused(url, f"{host} is a {why} address ({text}), not allowed")


def _refused(url: str, why: str) -> UrlRefused:
    return UrlRefused(f"URI for web-download does not pass filtering: {url} ({why})")


def _normal(host: str) -> str:
    """A host as the lists compare it: lower case, an IPv6 literal unbracketed and
    compressed, no trailing dot."""
    host = host.strip().lower().strip("[]").rstrip(".")
    addr = _address(host)
    return str(addr) if addr is not None else host


def _encoded_address(host: str) -> bool:
    """A host the resolver would read as an address though it is not written as one:
    ``2130706433``, ``127.1``, ``0x7f.1``."""
    if _address(host) is not None:
        return False
    labels = host.split(".")
    return all(label.isdigit() or label.startswith("0x") for label in labels if label)
