#!/usr/bin/env python3
"""The real OpenStack Glance 33.0.0, run as Glance ships it, to compare Tessera with.

Glance comes from PyPI into a venv of its own (default /tmp/tessera-bench/glance-venv,
reused when it already holds glance 33.0.0 and uwsgi). It runs under uWSGI the way
upstream's glance-api-uwsgi.ini does (4 processes, 1 thread each, ``http-socket`` so the
workers speak HTTP themselves), on SQLite and the file store, without Keystone: the paste
pipeline is the ``keystone`` one that the glance package installs minus ``authtoken``
(flavor ``trusted``), so Glance's own context middleware builds the request context from
the X-Identity-Status, X-Roles, X-Project-Id and X-User-Id headers, as it does behind
keystonemiddleware. Everything lives under one work directory in /tmp.

    from glance_anchor import start, stop
    url, master_pid = start(9393, "/tmp/tessera-bench/glance")
    ...
    stop()                       # stops uWSGI and removes the data (images, database)

    python bench/glance_anchor.py --port 9393      # by hand: runs until Ctrl-C
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

GLANCE_VERSION = "33.0.0"
UWSGI_VERSION = "2.0.31"
DEFAULT_VENV = Path("/tmp/tessera-bench/glance-venv")
HEADERS = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "member,reader",
    "X-Project-Id": "bench",
    "X-User-Id": "bench",
}
# The same, as the benchmark client's --header arguments.
CLIENT_HEADERS = [f"{k}:{v}" for k, v in HEADERS.items()]

_running: dict = {}


# ---------------------------------------------------------------- install
def _installed(venv: Path) -> bool:
    if not (venv / "bin" / "uwsgi").exists() or not (venv / "bin" / "python").exists():
        return False
    probe = "import importlib.metadata as m; print(m.version('glance'), m.version('uwsgi'))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True
    )
    return done.returncode == 0 and done.stdout.split() == [GLANCE_VERSION, UWSGI_VERSION]


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Install glance and uwsgi from PyPI into ``venv`` unless they are already there."""
    venv = Path(venv)
    if _installed(venv):
        return venv
    if not shutil.which("gcc"):  # pip compiles uWSGI from source
        if os.geteuid() != 0:
            raise RuntimeError(
                "uWSGI needs a C compiler: apt-get install build-essential python3-dev"
            )
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "build-essential", "python3-dev"], check=True
        )
    print(
        f"glance-anchor: installing glance=={GLANCE_VERSION} uwsgi=={UWSGI_VERSION} "
        f"into {venv} (a few minutes, once)",
        flush=True,
    )
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"glance=={GLANCE_VERSION}", f"uwsgi=={UWSGI_VERSION}"], check=True)
    if not _installed(venv):
        raise RuntimeError(f"glance-anchor: {venv} still lacks glance {GLANCE_VERSION} / uwsgi")
    return venv


# ---------------------------------------------------------------- configuration
def stock_paste_ini(venv: Path) -> Path:
    """The glance-api-paste.ini that the glance package installs into the venv."""
    path = venv / "etc" / "glance" / "glance-api-paste.ini"
    if path.exists():
        return path
    found = sorted(venv.rglob("glance-api-paste.ini"))
    if not found:
        raise RuntimeError(f"no glance-api-paste.ini under {venv}")
    return found[0]


def trusted_paste_ini(stock: str, etc: Path) -> str:
    """Glance's paste ini plus a ``trusted`` flavor: a ``glance-api-trusted`` composite and,
    in ``[composite:api]``, a ``trusted`` pipeline that is the ``keystone`` pipeline without
    ``authtoken``. The healthcheck's disable file moves under ``etc``."""
    out: list[str] = []
    section = None
    composite_added = pipeline_added = False
    for line in stock.splitlines():
        text = line.strip()
        if text.startswith("[") and text.endswith("]"):
            section = text[1:-1]
            if section == "composite:api":
                out += [
                    "# Tessera benchmark: keystone's pipeline without authtoken; the context",
                    "# middleware reads the caller from X-Identity-Status/X-Roles/X-Project-Id.",
                    "# trusted+caching is keystone+caching's (the image cache), likewise.",
                ]
                for flavor in ("trusted", "trusted+caching"):
                    out += [
                        f"[composite:glance-api-{flavor}]",
                        "paste.composite_factory = glance.api:root_app_factory",
                        "/: api",
                        "/healthcheck: healthcheck",
                        "",
                    ]
                composite_added = True
        elif section == "composite:api" and text.split("=")[0].strip() in (
            "keystone",
            "keystone+caching",
        ):
            out.append(line)
            flavor = text.split("=")[0].strip().replace("keystone", "trusted")
            pipeline = [name for name in text.split("=", 1)[1].split() if name != "authtoken"]
            if "context" not in pipeline:
                raise RuntimeError(f"unexpected keystone pipeline in Glance's paste ini: {text}")
            out.append(f"{flavor} = " + " ".join(pipeline))
            pipeline_added = True
            continue
        elif text.startswith("disable_by_file_path"):
            line = f"disable_by_file_path = {etc / 'healthcheck_disable'}"
        out.append(line)
    if not (composite_added and pipeline_added):
        raise RuntimeError("Glance's paste ini has no [composite:api] keystone pipeline")
    return "\n".join(out) + "\n"


def api_conf(
    etc: Path, data: Path, logs: Path, cache: bool = False, web_download_port: int | None = None
) -> str:
    """With ``web_download_port``: web-download allowed from 127.0.0.1 on that port only
    (Glance refuses loopback unless allowed_hosts lists it); enabled_import_methods keeps
    its default (glance-direct, web-download, copy-image). These list options have
    ``bounds=True``: their values must be written in brackets (unbracketed, the request
    that reads them is a 500)."""
    importing = ""
    if web_download_port is not None:
        importing = f"""
[import_filtering_opts]
allowed_schemes = [http]
allowed_hosts = [127.0.0.1]
allowed_ports = [{web_download_port}]

[os_glance_staging_store]
filesystem_store_datadir = {data / "staging"}

[os_glance_tasks_store]
filesystem_store_datadir = {data / "tasks"}
"""
    return f"""\
# glance-api.conf for the Tessera benchmark: SQLite, file store, no Keystone; the image
# cache only with cache=True (flavor trusted+caching, the sqlite driver).
[DEFAULT]
image_cache_driver = sqlite
debug = False
log_file = {logs / "glance-api.log"}
node_staging_uri = file://{data / "staging"}
image_cache_dir = {data / "image-cache"}

[database]
connection = sqlite:///{data / "glance.sqlite"}

[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = {data / "images"}/

[paste_deploy]
flavor = {"trusted+caching" if cache else "trusted"}
config_file = {etc / "glance-api-paste.ini"}

[oslo_concurrency]
lock_path = {data / "locks"}
{importing}"""


def uwsgi_ini(venv: Path, etc: Path, port: int, processes: int, threads: int) -> str:
    """Upstream's glance-api-uwsgi.ini, bound to loopback, with longer socket timeouts for
    1 GiB transfers and an explicit ``home`` (uWSGI would otherwise follow $VIRTUAL_ENV)."""
    return f"""\
[uwsgi]
socket-timeout = 60
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
lazy-apps = true
add-header = Connection: close
buffer-size = 65535
thunder-lock = true
enable-threads = true
exit-on-reload = true
die-on-term = true
master = true
processes = {processes}
threads = {threads}
http-socket = 127.0.0.1:{port}
home = {venv}
module = glance.wsgi.api:application
env = OS_GLANCE_CONFIG_DIR={etc}
"""


# ---------------------------------------------------------------- run
def _answers(url: str) -> bool:
    request = urllib.request.Request(f"{url}/v2/images?limit=1", headers=HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def start(
    port: int,
    workdir: str | Path,
    venv: str | Path = DEFAULT_VENV,
    processes: int = 4,
    threads: int = 1,
    timeout: float = 120,
    cache: bool = False,
    web_download_port: int | None = None,
) -> tuple[str, int]:
    """Install if needed, write the config under ``workdir``, sync the database, start the
    uWSGI master and wait until ``/v2/images`` answers 200 to the trusted headers.
    ``web_download_port``: allow web-download from http://127.0.0.1:<that port>.
    Returns (base URL, uWSGI master pid)."""
    if _running:
        raise RuntimeError("glance-anchor is already running; stop() it first")
    venv = ensure_venv(Path(venv))
    workdir = Path(workdir)
    etc, data, logs = workdir / "etc", workdir / "data", workdir / "logs"
    for path in (
        etc,
        logs,
        data / "images",
        data / "image-cache",
        data / "staging",
        data / "tasks",
        data / "locks",
    ):
        path.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    if _answers(url):
        raise RuntimeError(f"something already answers on {url}")

    paste = trusted_paste_ini(stock_paste_ini(venv).read_text(), etc)
    (etc / "glance-api-paste.ini").write_text(paste)
    (etc / "glance-api.conf").write_text(api_conf(etc, data, logs, cache, web_download_port))
    (etc / "glance-uwsgi.ini").write_text(uwsgi_ini(venv, etc, port, processes, threads))

    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    with open(logs / "db-sync.log", "ab") as log:
        subprocess.run(
            [
                str(venv / "bin" / "glance-manage"),
                "--config-file",
                str(etc / "glance-api.conf"),
                "db",
                "sync",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=True,
            timeout=300,
        )

    uwsgi_log = logs / "uwsgi.log"
    with open(uwsgi_log, "ab") as log:
        master = subprocess.Popen(
            [str(venv / "bin" / "uwsgi"), "--ini", str(etc / "glance-uwsgi.ini")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    _running.update(process=master, workdir=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if master.poll() is not None:
            break
        if _answers(url):
            return url, master.pid
        time.sleep(0.5)
    tail = uwsgi_log.read_text(errors="replace")[-3000:]
    stop()
    raise RuntimeError(f"Glance did not come up on {url}; {uwsgi_log} ends with:\n{tail}")


def stop(keep_data: bool = False) -> None:
    """Stop uWSGI (SIGTERM to the master: die-on-term stops the workers) and remove the
    data directory (images, database) unless ``keep_data``."""
    master = _running.pop("process", None)
    workdir = _running.pop("workdir", None)
    if master is not None:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # whatever is left of the session this master leads (its workers), and only that
        try:
            os.killpg(master.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        master.wait()
    if workdir is not None and not keep_data:
        shutil.rmtree(Path(workdir) / "data", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9393)
    parser.add_argument("--workdir", default="/tmp/tessera-bench/glance")
    parser.add_argument("--venv", default=str(DEFAULT_VENV))
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    url, pid = start(args.port, args.workdir, args.venv, args.processes, args.threads)
    print(
        f"glance {GLANCE_VERSION} on {url} (uWSGI master pid {pid}); send the headers "
        f"{' '.join(CLIENT_HEADERS)}; Ctrl-C stops it and removes its data",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while _running["process"].poll() is None:
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
