"""A RabbitMQ and a MariaDB of a test's own, in a temporary directory, on ports of their
own, for tests that stop, restart and freeze them (tests/faults/): never the machine's
shared servers. Each can be stopped, started again on the same data, frozen (SIGSTOP)
and thawed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.stack import free_port

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # not the wrapper that su's


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open: {log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGCONT)  # a frozen server cannot stop
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivateRabbit:
    """``rabbitmq-server`` with its own node name, AMQP and distribution ports, Mnesia
    and log directories and an empty plugin list (no management listener to clash)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.node = f"tessera-faults-{uuid.uuid4().hex[:8]}@localhost"
        (workdir / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(workdir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "no-config"),
            "RABBITMQ_PID_FILE": str(workdir / "rabbit.pid"),
        }
        self.url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"
        self.log = workdir / "rabbitmq.out"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def available() -> str | None:
        """Why a private RabbitMQ cannot run here, or None."""
        if not os.access(RABBITMQ_SERVER, os.X_OK):
            return f"{RABBITMQ_SERVER} is not installed"
        return None

    def start(self, timeout: float = 60) -> PrivateRabbit:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [RABBITMQ_SERVER],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, timeout, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _stop(self.proc)
        # what the node leaves behind (epmd is shared and stays)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "mnesia", ignore_errors=True)


class PrivateMariaDB:
    """``mariadbd`` on a data directory made by ``mariadb-install-db`` in ``workdir``,
    with its own port and socket (grant tables skipped: a throw-away server)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.datadir = workdir / "mariadb"
        self.port = free_port()
        self.log = workdir / "mariadb.out"
        self.proc: subprocess.Popen | None = None
        self.database = "tessera_faults"
        self.url = f"mysql://root@127.0.0.1:{self.port}/{self.database}?charset=utf8mb4"

    @staticmethod
    def available() -> str | None:
        for tool in ("mariadb-install-db", "mariadbd"):
            if shutil.which(tool) is None and not os.access(f"/usr/sbin/{tool}", os.X_OK):
                return f"{tool} is not installed"
        return None

    def install(self) -> PrivateMariaDB:
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return self

    def start(self, timeout: float = 60) -> PrivateMariaDB:
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.workdir / 'mariadb.sock'}",
                    f"--pid-file={self.workdir / 'mariadb.pid'}",
                    "--user=root",
                    "--skip-log-bin",
                    "--skip-grant-tables",
                    "--innodb-buffer-pool-size=32M",
                    "--max-connections=500",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, timeout, self.proc, self.log)
        return self

    def create_database(self) -> None:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {self.database} CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir, ignore_errors=True)
