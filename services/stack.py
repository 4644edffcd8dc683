"""``tessera-run [--config-file PATH]``: the whole stack in the foreground on one machine.

Migrates the database, then starts the registry, store, cache and API as child
processes; restarts one that dies (up to 5 times a minute) and stops them all on
Ctrl-C / SIGTERM, within about 5 seconds:

1. the gateway first: it stops accepting, and requests in flight get GATEWAY_GRACE
   seconds to finish (an upload cut short is aborted by its store, image back to queued);
2. then the store and cache (each finishes or kills its running workers), and
3. the registry last, so that what the others finish can still be recorded.

Each child runs in a process group of its own, so Ctrl-C in a terminal reaches only
this process (which stops the children in that order), and each is sent SIGTERM if
this process dies. A second Ctrl-C kills everything at once."""

from __future__ import annotations

import ctypes
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
from services.common.config_check import CHECKED_ENV, log_config_warnings
from services.common.logs import setup_logging
from services.common.property_protections import check_at_start
from services.registry.manage import db_sync

SERVICES = ("registry", "store", "cache")
RESTART_WINDOW = 60  # seconds
MAX_RESTARTS = 5  # within the window, before tessera-run gives up and stops everything
GATEWAY_GRACE = 2.5  # seconds for requests in flight before the gateway is killed
SERVICE_GRACE = 2.0  # seconds for a nameko service (services.launch.STOP_TIMEOUT + margin)
PR_SET_PDEATHSIG = 1


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


def _wait_until_serving(url: str, processes: list, stopping, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stopping():
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


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when tessera-run dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, process_group=0, preexec_fn=_die_with_parent)


def terminate(processes: list, grace: float, hurry=lambda: False) -> None:
    """SIGTERM each process, wait up to ``grace`` seconds (less if ``hurry()`` turns
    true), then SIGKILL the process group of each one still running."""
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not hurry():
        if all(p.poll() is not None for p in processes):
            return
        time.sleep(0.05)
    for p in processes:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the gateway's workers too
            except ProcessLookupError:
                pass
            p.wait()


def stop_all(processes: dict, hurry=lambda: False) -> None:
    """The gateway, then the store and cache, then the registry (see the docstring)."""
    terminate([processes["api"]], GATEWAY_GRACE, hurry)
    terminate([processes["store"], processes["cache"]], SERVICE_GRACE, hurry)
    terminate([processes["registry"]], SERVICE_GRACE, hurry)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not any(a.startswith(("--config-file", "--config-dir")) for a in argv):
        # the embedded defaults (`make run`): the image cache on, under data_dir/cache
        os.environ.setdefault("OS_CACHE__ENABLED", "true")
    conf = load_config(argv, prog="tessera-run")
    check_at_start(conf, "tessera-run")
    setup_logging(conf, "run")
    # once for the whole stack, not by each service again
    log_config_warnings(conf)
    os.environ[CHECKED_ENV] = "1"
    check_broker(conf)
    for path in (data_dir(conf), filesystem_store_datadir(conf), image_cache_dir(conf)):
        path.mkdir(parents=True, exist_ok=True)
    print(f"tessera: database at revision {db_sync(conf)}", flush=True)

    commands = {name: [sys.executable, "-m", "services.launch", name, *argv] for name in SERVICES}
    commands["api"] = [sys.executable, "-m", "services.api.server", *argv]
    signals: list[int] = []

    def on_signal(signum, _frame):
        signals.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes = {name: spawn(cmd) for name, cmd in commands.items()}

    url = f"http://{conf.bind_host}:{conf.bind_port}"
    if _wait_until_serving(url, list(processes.values()), stopping=lambda: bool(signals)):
        print(f"tessera: serving the Image API on {url} (Ctrl-C stops)", flush=True)
    exit_code = 0
    restarts: list[float] = []
    while not signals and not exit_code:
        for name, proc in processes.items():
            if proc.poll() is None:
                continue
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
            processes[name] = spawn(commands[name])
        time.sleep(0.2)
    started = time.monotonic()
    if signals:
        print(f"tessera: stopping ({signal.Signals(signals[0]).name})", flush=True)
    stop_all(processes, hurry=lambda: len(signals) > 1)
    print(f"tessera: stopped in {time.monotonic() - started:.1f} s", flush=True)
    os._exit(exit_code)


if __name__ == "__main__":
    main()
