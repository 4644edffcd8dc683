"""``tessera-run [--cluster] [--config-file PATH]``: the whole stack in the foreground on
one machine.

Migrates the database, then starts the registry, store, cache and API as child
processes; restarts one that dies (up to 5 times a minute) and stops them all on
Ctrl-C / SIGTERM, within about 5 seconds:

1. the gateway first: it stops accepting, and requests in flight get GATEWAY_GRACE
   seconds to finish (an upload cut short is aborted by its store, image back to queued);
2. then the store and cache (each finishes or kills its running workers), and
3. the registry last, so that what the others finish can still be recorded.

Each child runs in a process group of its own, so Ctrl-C in a terminal reaches only
this process (which stops the children in that order), and each is sent SIGTERM if
this process dies. A second Ctrl-C kills everything at once.

``--cluster`` starts docker-compose.yml's topology as local processes instead (``make
run-cluster``): 2 registries, 3 store replicas, 2 gateways on ``bind_port`` and
``bind_port + 1``, each with a cache service sharing its own cache directory, on a
database every registry shares (``[database] connection``, else the local MariaDB's
``tessera_cluster``, created if missing). Each process is named in the log with its
pid (``registry-2``, ``store-3``, ``api-1`` …), so one can be killed to watch the
others carry on."""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from oslo_config import cfg

from services.api.rpc_client import RpcConnection
from services.common.broker import BrokerSettings
from services.common.config import (
    build_config,
    data_dir,
    database_url,
    filesystem_store_datadir,
    image_cache_dir,
    image_cache_settings,
    load_config,
    package_version,
)
from services.common.config_check import CHECKED_ENV, log_config_warnings
from services.common.dev_auth import check_dev_auth_bind
from services.common.logs import setup_logging
from services.common.property_protections import check_at_start
from services.registry.manage import db_sync

SERVICES = ("registry", "store", "cache")
RESTART_WINDOW = 60  # seconds
MAX_RESTARTS = 5  # within the window, before tessera-run gives up and stops everything
GATEWAY_GRACE = 2.5  # seconds for requests in flight before the gateway is killed
SERVICE_GRACE = 2.0  # seconds for a nameko service (services.launch.STOP_TIMEOUT + margin)
PR_SET_PDEATHSIG = 1
#: ``--cluster``: processes of each kind (and one cache service beside each gateway),
#: as docker-compose.yml runs them
CLUSTER = {"registry": 2, "store": 3, "api": 2}
#: tessera-run's own flag (``--nocluster``, oslo.config's inverse, turns it off again);
#: every other argument is oslo.config's and is passed on to each child
CLUSTER_FLAG = cfg.BoolOpt(
    "cluster",
    default=False,
    help="Run docker-compose.yml's topology as local processes: 2 registries, 3 store "
    "replicas, 2 gateways on bind_port and bind_port + 1 (each with a cache service), "
    "on a database every registry shares ([database] connection, else the local "
    "MariaDB's tessera_cluster). As `make run-cluster`.",
)
#: ``--cluster`` without a ``[database] connection``: the local MariaDB (make test's)
CLUSTER_DATABASE = "mysql://root@127.0.0.1:3306/tessera_cluster?charset=utf8mb4"
#: The order of a stop (see the docstring) and each step's grace in seconds.
STOP_ORDER = (
    (("api",), GATEWAY_GRACE),
    (("store", "cache"), SERVICE_GRACE),
    (("registry",), SERVICE_GRACE),
)


@dataclass
class Child:
    """One process of the stack: its kind (registry, store, cache, api), its command and
    the environment it gets beyond this process's (its own options, as OS_* variables)."""

    kind: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)


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


def spawn(child: Child) -> subprocess.Popen:
    env = {**os.environ, **child.env} if child.env else None
    return subprocess.Popen(child.cmd, process_group=0, preexec_fn=_die_with_parent, env=env)


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


def stop_all(children: dict[str, Child], processes: dict, hurry=lambda: False) -> None:
    """The gateways, then the stores and caches, then the registries (see the docstring)."""
    for kinds, grace in STOP_ORDER:
        step = [processes[name] for name, child in children.items() if child.kind in kinds]
        terminate(step, grace, hurry)


def plan(conf, argv: list[str], cluster: bool) -> dict[str, Child]:
    """The processes to run, by name: one of each kind, or ``CLUSTER``'s topology."""
    services = {name: ["-m", "services.launch", name] for name in SERVICES}
    services["api"] = ["-m", "services.api.server"]
    if not cluster:
        return {kind: Child(kind, [sys.executable, *cmd, *argv]) for kind, cmd in services.items()}
    children: dict[str, Child] = {}
    for kind in ("registry", "store"):
        for i in range(1, CLUSTER[kind] + 1):
            env = {}
            if kind == "store" and conf.store.data_bind_port:  # one port each
                env["OS_STORE__DATA_BIND_PORT"] = str(conf.store.data_bind_port + i - 1)
            children[f"{kind}-{i}"] = Child(kind, [sys.executable, *services[kind], *argv], env)
    cache = image_cache_settings(conf)
    for i in range(1, CLUSTER["api"] + 1):
        # each gateway is a node with its own cache directory, shared with its cache service
        env = {"OS_DEFAULT__IMAGE_CACHE_DIR": str(cache.directory / f"api-{i}")}
        if not cache.enabled:
            env = {}
        children[f"cache-{i}"] = Child("cache", [sys.executable, *services["cache"], *argv], env)
        api_env = {**env, "OS_DEFAULT__BIND_PORT": str(conf.bind_port + i - 1)}
        children[f"api-{i}"] = Child("api", [sys.executable, *services["api"], *argv], api_env)
    return children


def gateway_urls(conf, children: dict[str, Child]) -> list[str]:
    ports = [
        int(c.env.get("OS_DEFAULT__BIND_PORT", conf.bind_port))
        for c in children.values()
        if c.kind == "api"
    ]
    return [f"http://{conf.bind_host}:{port}" for port in ports]


def cluster_database(conf) -> str | None:
    """The database of ``--cluster``: ``[database] connection`` when it is one every
    registry can share, else the local MariaDB's ``tessera_cluster`` (created here and
    returned, for the children's environment). SQLite is refused."""
    if conf.database.connection:
        if database_url(conf).startswith("sqlite"):
            sys.exit(
                "tessera-run: --cluster runs 2 registries, which need a shared database: "
                "set [database] connection to a MySQL/MariaDB URL (or leave it unset for "
                f"{CLUSTER_DATABASE})"
            )
        return None
    import pymysql

    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS tessera_cluster CHARACTER SET utf8mb4")
        finally:
            conn.close()
    except pymysql.MySQLError as exc:
        sys.exit(
            f"tessera-run: --cluster cannot reach MariaDB at 127.0.0.1:3306 as root ({exc}); "
            f"start one, or set [database] connection in your config file"
        )
    return CLUSTER_DATABASE


def _hide_password(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _show_help(argv: list[str]) -> None:
    """``-h``/``--help``: oslo.config's help for the options every service takes, with
    tessera-run's own ``--cluster`` among them (load_config, shared by every command,
    does not know it). Parsing prints the help and exits."""
    conf = build_config()
    conf.register_cli_opt(CLUSTER_FLAG)
    conf(
        args=argv,
        prog="tessera-run",
        version=package_version(),
        default_config_files=[],
        default_config_dirs=[],
    )


def own_arguments(argv: list[str]) -> tuple[bool, list[str]]:
    """(``--cluster`` given, the arguments for oslo.config and the children): the last
    of ``--cluster`` / ``--nocluster`` wins, as oslo.config reads a flag."""
    if "-h" in argv or "--help" in argv:
        _show_help(argv)
    flags = {"--cluster": True, "--nocluster": False}
    given = [flags[a] for a in argv if a in flags]
    return bool(given and given[-1]), [a for a in argv if a not in flags]


def main(argv: list[str] | None = None) -> None:
    cluster, argv = own_arguments(list(sys.argv[1:] if argv is None else argv))
    if not any(a.startswith(("--config-file", "--config-dir")) for a in argv):
        # the embedded defaults (`make run`): the image cache on, under data_dir/cache
        os.environ.setdefault("OS_CACHE__ENABLED", "true")
    conf = load_config(argv, prog="tessera-run")
    if cluster:
        url = cluster_database(conf)
        if url is not None:  # for this process and every child
            os.environ["OS_DATABASE__CONNECTION"] = url
            conf = load_config(argv, prog="tessera-run")
    check_at_start(conf, "tessera-run")
    check_dev_auth_bind(conf, "tessera-run")
    setup_logging(conf, "run")
    # once for the whole stack, not by each service again
    log_config_warnings(conf)
    os.environ[CHECKED_ENV] = "1"
    check_broker(conf)
    for path in (data_dir(conf), filesystem_store_datadir(conf), image_cache_dir(conf)):
        path.mkdir(parents=True, exist_ok=True)
    print(f"tessera: database at revision {db_sync(conf)}", flush=True)

    children = plan(conf, argv, cluster)
    signals: list[int] = []

    def on_signal(signum, _frame):
        signals.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes = {name: spawn(child) for name, child in children.items()}
    if cluster:
        print(
            f"tessera: cluster on {_hide_password(database_url(conf))}: "
            + ", ".join(f"{name} (pid {p.pid})" for name, p in processes.items()),
            flush=True,
        )

    urls = gateway_urls(conf, children)
    if all(
        _wait_until_serving(url, list(processes.values()), stopping=lambda: bool(signals))
        for url in urls
    ):
        print(f"tessera: serving the Image API on {' and '.join(urls)} (Ctrl-C stops)", flush=True)
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
            processes[name] = spawn(children[name])
            print(
                f"tessera: {name} exited with {proc.returncode}; restarting it"
                + (f" (pid {processes[name].pid})" if cluster else ""),
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.2)
    started = time.monotonic()
    if signals:
        print(f"tessera: stopping ({signal.Signals(signals[0]).name})", flush=True)
    stop_all(children, processes, hurry=lambda: len(signals) > 1)
    print(f"tessera: stopped in {time.monotonic() - started:.1f} s", flush=True)
    os._exit(exit_code)


if __name__ == "__main__":
    main()
