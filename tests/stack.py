"""Start a real Tessera stack for tests: a RabbitMQ vhost of its own, a fresh database
(SQLite file or a MariaDB database), and ``tessera-run`` (registry, store, cache and API
as separate processes) on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pymysql
import requests

ROOT = Path(__file__).resolve().parents[1]
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (the gateways of ``--cluster``)."""
    for _ in range(50):
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Vhost:
    """A RabbitMQ vhost for one test run, so tests never meet a developer's `make run`."""

    def __init__(self):
        self.name = f"tessera-test-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.transport_url = f"rabbit://guest:guest@127.0.0.1:5672/{self.name}"

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


class MysqlDatabase:
    def __init__(self):
        self.name = f"tessera_test_{uuid.uuid4().hex[:8]}"
        self._execute(f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
        self.url = f"mysql://root@127.0.0.1:3306/{self.name}?charset=utf8mb4"

    @staticmethod
    def _execute(sql: str) -> None:
        conn = pymysql.connect(**MYSQL)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def delete(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS {self.name}")


def write_config(path: Path, **sections: dict) -> Path:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {v}" for k, v in options.items() if v is not None]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class Stack:
    """``tessera-run --config-file ...`` as a child process."""

    def __init__(
        self,
        workdir: Path,
        transport_url: str | None = None,
        database_url: str | None = None,
        sections: dict | None = None,
        config_files: tuple = (),
        cluster: bool = False,
        mysql: bool = False,
        **extra_default,
    ):
        """Without a ``transport_url`` the stack gets a RabbitMQ vhost of its own, removed
        by ``cleanup`` (two stacks on one vhost would share the work of one queue).
        ``cluster``: ``tessera-run --cluster`` (two gateways: ``urls``). ``mysql``: a
        MariaDB database of its own instead of SQLite, deleted by ``cleanup``."""
        self.workdir = workdir
        self.mysql = MysqlDatabase() if mysql else None
        database_url = self.mysql.url if self.mysql else database_url
        self.vhost = Vhost() if transport_url is None else None
        transport_url = transport_url or self.vhost.transport_url
        self.cluster = cluster
        self.port = free_ports(2) if cluster else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.urls = [f"http://127.0.0.1:{self.port + i}" for i in range(2 if cluster else 1)]
        sections = dict(sections or {})
        self.config = write_config(
            workdir / "tessera.conf",
            DEFAULT={
                "transport_url": transport_url,
                "data_dir": workdir / "data",
                "bind_port": self.port,
                "workers": 1,
                "threads": 8,
                "rpc_timeout": 10,
                **extra_default,
                **sections.pop("DEFAULT", {}),
            },
            database={"connection": database_url},
            **sections,
        )
        #: ``--config-file`` after the stack's own (later files win, as in oslo.config)
        self.config_files = [self.config, *config_files]
        self.extra: list[subprocess.Popen] = []
        self.log = workdir / "stack.log"
        self.process: subprocess.Popen | None = None

    @property
    def config_args(self) -> list[str]:
        return [arg for path in self.config_files for arg in ("--config-file", str(path))]

    #: A path that answers 200 once the stack serves (no token needed in Keystone mode).
    ready_path = "/v2/images?limit=1"

    def _services_answer(self) -> bool:
        """Whether the registry and a store replica answer their health RPC."""
        from services.api.rpc_client import RpcClient
        from services.common.config import load_config
        from services.common.context import RequestContext
        from services.common.errors import ServiceUnavailable

        # the stack's own broker settings: every host, TLS, heartbeats
        client = RpcClient.from_config(load_config(self.config_args))
        client.timeout = 5
        try:
            return all(
                client.call(name, "health", RequestContext())["status"] == "ok"
                for name in ("registry", "store")
            )
        except ServiceUnavailable:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 60) -> Stack:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.stack",
                    *(["--cluster"] if self.cluster else []),
                    *self.config_args,
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tessera-run exited: {self.log.read_text()[-3000:]}")
            try:
                if (
                    all(
                        requests.get(f"{url}{self.ready_path}", timeout=2).status_code == 200
                        for url in self.urls
                    )
                    and self._services_answer()
                ):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tessera-run did not come up: {self.log.read_text()[-3000:]}")

    @property
    def datadir(self) -> Path:
        return self.workdir / "data" / "images"

    def start_service(self, name: str) -> subprocess.Popen:
        """One more replica of a service (e.g. a second store), beside tessera-run."""
        with open(self.workdir / f"{name}-{len(self.extra)}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.launch", name, *self.config_args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.extra.append(proc)
        return proc

    def processes(self, name: str) -> list[psutil.Process]:
        """The live processes of service ``name`` ("registry", "store", "cache"; "gateway":
        the gunicorn master and its workers), tessera-run's and start_service's alike."""
        marker = "services.api.server" if name == "gateway" else f"services.launch {name}"
        procs = psutil.Process(self.process.pid).children(recursive=True)
        procs += [psutil.Process(p.pid) for p in self.extra if p.poll() is None]
        found = []
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE and marker in " ".join(proc.cmdline()):
                    found.append(proc)
            except psutil.Error:  # gone meanwhile
                pass
        return found

    def queue_consumers(self) -> dict[str, int]:
        """{queue: consumers} in the stack's own vhost, as RabbitMQ counts them."""
        out = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", self.vhost.name, "name", "consumers"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        rows = (line.partition("\t") for line in out.splitlines())
        return {name: int(count) for name, _, count in rows if count.isdigit()}

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop(self) -> int | None:
        for proc in self.extra:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        if self.vhost is not None:
            self.vhost.delete()
        if self.mysql is not None:
            self.mysql.delete()
