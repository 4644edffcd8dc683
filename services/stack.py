"""``tessera-run [--config-file PATH]``: the whole stack in the foreground on one machine.

Migrates the database, then starts the registry, store, cache and API as child
processes; restarts one that dies (up to 5 times a minute) and stops them all on
Ctrl-C / SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from services.api.rpc_client import RpcConnection
from services.common.broker import BrokerSettings
from services.common.config import (
    data_dir,
    filesystem_store_datadir,
    image_cache_dir,
    load_config,
)
from services.registry.manage import db_sync

SERVICES = ("registry", "store", "cache")
RESTART_WINDOW = 60  # seconds
MAX_RESTARTS = 5  # within the window, before tessera-run gives up and stops everything


def check_broker(conf) -> None:
    settings = BrokerSettings.from_config(conf)
    errors = []
    for host in settings.hosts:  # any one of the transport URL's hosts will do
        try:
            RpcConnection(host, connect_timeout=3, ssl=settings.ssl).close()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means the same to the operator
            errors.append(f"{host.host}: {exc}")
    sys.exit(
        f"tessera: cannot reach RabbitMQ at {'; '.join(errors)} (vhost "
        f"{settings.hosts[0].virtual_host!r})\n"
        f"Start one with `rabbitmq-server -detached` (Debian/Ubuntu: "
        f"`apt-get install rabbitmq-server`), or point `transport_url` in the "
        f"[DEFAULT] section of your config file (or OS_DEFAULT__TRANSPORT_URL) at a "
        f"running broker."
    )


def _wait_until_serving(url: str, processes: list, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            return False
        try:
            with urllib.request.urlopen(url + "/v2/images?limit=1", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # Keystone mode: serving, and asking for a token
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    conf = load_config(argv, prog="tessera-run")
    check_broker(conf)
    for path in (data_dir(conf), filesystem_store_datadir(conf), image_cache_dir(conf)):
        path.mkdir(parents=True, exist_ok=True)
    print(f"tessera: database at revision {db_sync(conf)}", flush=True)

    commands = [[sys.executable, "-m", "services.launch", name, *argv] for name in SERVICES]
    commands.append([sys.executable, "-m", "services.api.server", *argv])
    processes = [subprocess.Popen(cmd) for cmd in commands]

    stopping = False

    def stop(_signum=None, _frame=None):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    url = f"http://{conf.bind_host}:{conf.bind_port}"
    if _wait_until_serving(url, processes):
        print(f"tessera: serving the Image API on {url} (Ctrl-C stops)", flush=True)
    exit_code = 0
    restarts: list[float] = []
    while not stopping and not exit_code:
        for i, proc in enumerate(processes):
            if proc.poll() is None:
                continue
            name = " ".join(proc.args[2:4])
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
            if len(restarts) > MAX_RESTARTS:
                print(
                    f"tessera: {name} exited with {proc.returncode}, too many restarts; stopping",
                    file=sys.stderr,
                    flush=True,
                )
                exit_code = 1
                break
            print(
                f"tessera: {name} exited with {proc.returncode}; restarting it",
                file=sys.stderr,
                flush=True,
            )
            processes[i] = subprocess.Popen(proc.args)
        time.sleep(0.2)
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    os._exit(exit_code)


if __name__ == "__main__":
    main()
