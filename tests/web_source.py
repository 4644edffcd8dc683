"""A web-download source for the import tests, run as a process of its own (an
in-process http.server hangs at times once eventlet.wsgi has been imported, which every
test process that collects the store's tests does).

``python -m tests.web_source DIR`` prints its port, then serves from DIR:
``/data/<name>`` (the file DIR/<name>), ``/redirect?to=<url>``, ``/long/<name>`` and
``/short/<name>`` (a Content-Length that lies), ``/slow/<name>`` (the first MiB, then the
rest once the file DIR/release exists)."""

from __future__ import annotations

import http.server
import os
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MiB = 1 << 20


class Source(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = Path(".")

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        parts = urlsplit(self.path)
        kind, _, name = parts.path.strip("/").partition("/")
        if kind == "redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = self.root / name
        if not name or "/" in name or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if kind == "long":
                self.wfile.write(data + os.urandom(4096))
            elif kind == "short":
                self.wfile.write(data[: len(data) // 2])
            elif kind == "slow":
                self.wfile.write(data[:MiB])
                self.wfile.flush()
                deadline = time.monotonic() + 30
                while not (self.root / "release").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.wfile.write(data[MiB:])
            else:
                self.wfile.write(data)
        except OSError:
            pass
        self.close_connection = True


def main(root: str) -> None:
    Source.root = Path(root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Source)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
