"""TLS to the broker (transport_url ``?ssl=1`` and ``[oslo_messaging_rabbit] ssl_ca_file``)
for the gateway and the nameko services. The machine's RabbitMQ speaks plain AMQP, so the
test puts a TLS terminator in front of it (a self-signed certificate made with openssl);
the stack reaches the broker only through it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from services.api.rpc_client import RpcClient
from services.common.config import load_config
from services.common.context import RequestContext
from services.common.errors import ServiceUnavailable
from tests.conftest import Api
from tests.integration.test_image_data import active_image
from tests.stack import Stack, Vhost, write_config


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "broker.pem", directory / "broker.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class TlsTerminator:
    """Accepts TLS on a free port and relays each connection to RabbitMQ in plain AMQP."""

    def __init__(self, cert: Path, key: Path, upstream=("127.0.0.1", 5672)):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        self.handshakes += 1
        upstream = socket.create_connection(self.upstream)
        threading.Thread(target=self._pipe, args=(upstream, tls), daemon=True).start()
        self._pipe(tls, upstream)

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.listener.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    terminator = TlsTerminator(cert, key)
    terminator.cert = cert
    yield terminator
    terminator.close()


def test_stack_over_tls(tls, tmp_path):
    vhost = Vhost()
    stack = Stack(
        tmp_path,
        transport_url=f"rabbit://guest:guest@127.0.0.1:{tls.port}/{vhost.name}?ssl=1",
        sections={"oslo_messaging_rabbit": {"ssl_ca_file": tls.cert}},
    )
    try:
        stack.start()
        active_image(Api(stack.url), "over-tls", b"tls" * 1000)
        # the gateway, the registry, the store and the cache all came through TLS
        assert tls.handshakes >= 4
    finally:
        stack.cleanup()
        vhost.delete()


def test_a_broker_certificate_the_ca_does_not_sign_is_refused(tls, tmp_path):
    other_cert, _ = make_certificate(tmp_path)
    config = write_config(
        tmp_path / "tessera.conf",
        DEFAULT={"transport_url": f"rabbit://guest:guest@127.0.0.1:{tls.port}/?ssl=1"},
        oslo_messaging_rabbit={"ssl_ca_file": other_cert},
    )
    client = RpcClient.from_config(load_config(["--config-file", str(config)]))
    assert client.ssl["ca_certs"] == str(other_cert)
    with pytest.raises(ServiceUnavailable, match="cannot reach its message broker"):
        client.call("registry", "health", RequestContext())
