"""memcached (the Debian package) on a free loopback port, for the tests of the install
guides' ``[keystone_authtoken] memcached_servers``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

from tests.stack import free_port

MEMCACHED = shutil.which("memcached")


class Memcached:
    """memcached on a free loopback port, for one test module."""

    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                MEMCACHED,
                "-l",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "0",
                "-m",
                "16",
                "-u",
                "nobody",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("memcached did not start") from None
                time.sleep(0.05)

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stats(self) -> dict[str, str]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return {
            parts[1]: parts[2]
            for parts in (line.split() for line in data.decode().splitlines())
            if len(parts) == 3 and parts[0] == "STAT"
        }

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
