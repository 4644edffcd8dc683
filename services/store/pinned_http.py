"""HTTP(S) requests pinned to the address the URL filter checked.

A URL filter (services/common/url_filter.py) resolves a host and checks its addresses;
a client that then connects by name resolves it again, and a DNS answer can change in
between (a public address for the check, 169.254.169.254 for the connection). Here the
connection goes to ``target.address``, the very address that was checked, while the Host
header and the TLS server name (and certificate check) stay the URL's host.

Used by both fetchers of URLs given by users, web-download imports
(services/store/web_fetch.py) and the http store's reads of locations
(services/store/backends/http.py), through ``follow``: a ``resolve`` and a pinned
request per redirect hop.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urljoin

from requests.utils import requote_uri

from services.common.url_filter import Target

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
BLOCKSIZE = 1 << 20  # bytes a request body is sent in


class TooManyRedirects(Exception):
    """More redirects than a fetch follows."""


class _HeldSocket:
    """http.client closes a connection as soon as the response says it will close (it
    "passes the connection to the response"); a green socket closed so is gone under
    the response's file too. Here the socket is held until ``release``."""

    def close(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            self._held = sock

    def release(self):
        self.close()
        sock, self._held = getattr(self, "_held", None), None
        if sock is not None:
            sock.close()


class _Pinned(_HeldSocket):
    """Connects to the checked address, not to the host's name."""

    def _pin(self, target: Target, connect_timeout: float | None) -> None:
        self._address = target.address
        self._connect_timeout = connect_timeout or self.timeout

    def _pinned_socket(self) -> socket.socket:
        sock = socket.create_connection((self._address, self.port), self._connect_timeout)
        sock.settimeout(self.timeout)
        return sock


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float, connect_timeout: float | None = None):
        super().__init__(target.host, target.port, timeout=timeout, blocksize=BLOCKSIZE)
        self._pin(target, connect_timeout)

    def connect(self):
        self.sock = self._pinned_socket()


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, connect_timeout: float | None = None):
        super().__init__(
            target.host,
            target.port,
            timeout=timeout,
            context=ssl.create_default_context(),
            blocksize=BLOCKSIZE,
        )
        self._pin(target, connect_timeout)

    def connect(self):
        self.sock = self._context.wrap_socket(self._pinned_socket(), server_hostname=self.host)


def host_header(target: Target) -> str:
    """The URL's host (and port, unless the scheme's default), as the Host header; a
    host in other than ASCII in its IDNA form (``xn--...``), as DNS was asked for it."""
    host = target.host if target.host.isascii() else target.host.encode("idna").decode()
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[target.scheme]
    return host if target.port == default else f"{host}:{target.port}"


def request(
    target: Target,
    method: str,
    headers: dict[str, str],
    timeout: float,
    connect_timeout: float | None = None,
) -> tuple[_Pinned, http.client.HTTPResponse]:
    """Send ``method`` for ``target`` to ``target.address`` (resolved and checked by the
    caller) and answer the connection and the response's head; the caller reads the body
    and then calls ``connection.release()``. The body is asked for as it is stored
    (``Accept-Encoding: identity``) on a connection used once (``Connection: close``).
    ``timeout`` is the read timeout; ``connect_timeout`` (default: ``timeout``) the
    connect one. Raises OSError or http.client.HTTPException, the connection released."""
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(target, timeout, connect_timeout)
    try:
        conn.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host_header(target))
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("Connection", "close")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        return conn, conn.getresponse()
    except BaseException:
        conn.release()
        raise


def follow(
    url: str,
    resolve: Callable[[str], Target],
    method: str,
    headers: dict[str, str],
    timeout: float,
    connect_timeout: float | None = None,
) -> tuple[str, _Pinned, http.client.HTTPResponse]:
    """``request`` ``url``, following redirects: each hop's target is ``resolve(url)``
    (a URL filter's, which raises for a refused hop), its path quoted as a browser would.
    Answers the last hop's URL, connection and response head: the first answer that is
    not a redirect with a Location (a redirect without one included); the caller reads
    the body and releases the connection. Raises what ``request`` raises, or
    TooManyRedirects past MAX_REDIRECTS."""
    for _hop in range(MAX_REDIRECTS + 1):
        target = resolve(url)
        target = replace(target, path=requote_uri(target.path))
        conn, resp = request(target, method, headers, timeout, connect_timeout)
        location = resp.getheader("Location") if resp.status in REDIRECTS else None
        if location is None:
            return url, conn, resp
        resp.close()
        conn.release()
        url = urljoin(url, location)
    raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
